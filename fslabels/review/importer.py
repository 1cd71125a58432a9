"""Import finished Label Studio reviews into a new dataset version, with an agreement report.

Per reviewed task, the reviewer's marks become per-candidate human labels:

- a ``relevant`` range on the clip's timeline (frames ``start..end``, 1-based, inclusive) marks
  the candidates whose timestamps fall inside it (frame ``round(t · fps) + 1``);
- a per-frame choice marks (``relevant``) or unmarks (``not relevant``) that candidate, and wins
  over ranges;
- an annotation with no marks at all keeps the pre-annotation when its verdict is ``accept``
  (the reviewer agreed with the frames the task showed pre-marked: the task's ``premarked``
  positions, recorded at export, not the top-k of the version imported onto) and marks nothing
  otherwise.

With several reviewers, ``human`` is the fraction of them who marked each candidate. The row's
``review`` column records reviewer(s), time, verdict, comment, project, task and annotation ids,
and the dataset version the task was exported from; an earlier review of the row is kept under
``previous``. Rows without a finished annotation are unchanged, human labels from earlier
imports included.

Reviewers are recorded as pseudonyms, ``reviewer-<Label Studio user id>``: the dataset may be
published, and only the Label Studio server maps an id to a person. Their e-mail addresses are
recorded instead only when asked for (``reviewer_emails=True``, ``--reviewer-emails``).

Every problem (a task that did not come from framesel, a sample the dataset does not have, a
range outside the video, an unknown frame position) is collected first and reported together;
nothing is written unless the whole import is valid.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fslabels.review import config as ui
from fslabels.review.agreement import DEFAULT_TOP_K, AgreementReport, agreement_report, top_frames
from fslabels.review.client import LabelStudio
from fslabels.review.export import PREMARKED, candidate_frame_numbers, dataset_version_id
from fsmodel.schema import HUMAN, REVIEW, SAMPLE_ID, SCORES, TIMESTAMPS

__all__ = [
    "ImportResult",
    "ReviewImportError",
    "human_labels",
    "import_reviews",
    "premarked_positions",
    "reviewer_name",
]

REPORT_SECTION = "Human review"
REPORT_ASSET = "review_agreement.png"


class ReviewImportError(ValueError):
    """The project's annotations cannot be imported; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[str], project: str) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(
            f"{len(self.problems)} problem(s) in the annotations of project {project!r}; "
            f"nothing was written:\n{shown}{more}"
        )


@dataclass
class ImportResult:
    """What `import_reviews` did.

    Attributes:
        out_dir: the new version's directory (None when it was only pushed).
        reviewed: sample_ids whose review was imported now.
        unreviewed_tasks: tasks of the project still without a finished annotation.
        report: agreement of the pseudo-labels with this import's reviews.
        push: the `hub_cards.release.Release` when pushed to a repo.
        version: the dataset version the reviews were applied to.
    """

    out_dir: Path | None
    reviewed: list[str]
    unreviewed_tasks: int
    report: AgreementReport
    version: str
    push: Any = None
    skipped_cancelled: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def _results(annotation: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in annotation.get("result") or [] if r.get("from_name") == name]


def _choice(result: Mapping[str, Any]) -> str | None:
    choices = (result.get("value") or {}).get("choices") or []
    return str(choices[0]) if choices else None


def premarked_positions(data: Mapping[str, Any]) -> list[int] | None:
    """The candidate positions a task showed pre-marked relevant, from its data.

    Tasks record them at export (``premarked`` in the framesel block). For tasks exported before
    that, they are the top-k of the fused score curve the task shows (``data["scores"]``, the
    exported version's scores rounded to 4 decimals), never those of the version imported onto.

    Returns:
        Ascending positions, or None when the task records neither.
    """
    block = data.get(ui.TASK_KEY) or {}
    if isinstance(block.get(PREMARKED), list):
        return sorted(int(i) for i in block[PREMARKED])
    fused = (data.get("scores") or {}).get("fused")
    if isinstance(fused, list) and fused and len(fused) == int(block.get("num_candidates", -1)):
        return top_frames(fused, int(block.get("top_k") or DEFAULT_TOP_K)).tolist()
    return None


def human_labels(
    annotation: Mapping[str, Any], block: Mapping[str, Any], where: str
) -> tuple[np.ndarray, list[str]]:
    """One annotation's per-candidate labels (0/1) and the problems found.

    Args:
        annotation: a Label Studio annotation (``result`` list).
        block: the task's framesel block (timestamps, fps, num_frames, num_candidates, and
            ``premarked``, the positions the task showed pre-marked: `premarked_positions`).
        where: names the task and annotation in problem messages.

    Example:
        >>> block = {"num_candidates": 2, "fps": 1.0, "num_frames": 2, "timestamps": [0.0, 1.0],
        ...          "premarked": [1]}
        >>> accept = {"choices": ["accept"]}
        >>> human_labels({"result": [{"from_name": "verdict", "value": accept}]}, block, "t")[0]
        array([0., 1.], dtype=float32)
    """
    problems: list[str] = []
    n = int(block["num_candidates"])
    fps = float(block["fps"])
    num_frames = int(block["num_frames"])
    numbers = candidate_frame_numbers(block[TIMESTAMPS], fps)
    marked = np.zeros(n, dtype=bool)
    touched = False
    for result in _results(annotation, ui.RANGES):
        value = result.get("value") or {}
        if ui.RELEVANT not in (value.get("timelinelabels") or [ui.RELEVANT]):
            continue
        for span in value.get("ranges") or []:
            try:
                start, end = int(span["start"]), int(span["end"])
            except (KeyError, TypeError, ValueError):
                problems.append(f"{where}: range {span!r} has no integer start/end")
                continue
            if start < 1 or end < start or end > num_frames:
                problems.append(
                    f"{where}: range frames {start}..{end} is outside the video (frames "
                    f"1..{num_frames}) or reversed"
                )
                continue
            marked |= (numbers >= start) & (numbers <= end)
            touched = True
    overrides: dict[int, bool] = {}
    for result in _results(annotation, ui.FRAME_CHOICE):
        item = result.get("item_index")
        if not isinstance(item, int) or not 0 <= item < n:
            problems.append(f"{where}: frame choice on item {item!r}, but the task has {n} frames")
            continue
        choice = _choice(result)
        if choice in (ui.RELEVANT, ui.IRRELEVANT):
            overrides[item] = choice == ui.RELEVANT
            touched = True
    for item, relevant in overrides.items():
        marked[item] = relevant
    if not touched and _verdict(annotation) == "accept":
        premarked = block.get(PREMARKED)
        if premarked is None:
            problems.append(
                f"{where}: accepted without marks, but the task does not record which frames it "
                "showed pre-marked; mark the relevant frames in Label Studio"
            )
        elif any(not 0 <= int(i) < n for i in premarked):
            problems.append(f"{where}: pre-marked positions {premarked} outside 0..{n - 1}")
        else:
            marked[[int(i) for i in premarked]] = True
    return marked.astype(np.float32), problems


def reviewer_name(user_id: Any, user: Mapping[str, Any], emails: bool = False) -> str:
    """How a reviewer is recorded in the ``review`` column.

    Args:
        user_id: the annotation's ``completed_by`` (a Label Studio user id).
        user: that user's record from ``/api/users/`` (may be empty).
        emails: record the e-mail address (else the username, else the pseudonym) instead of
            the pseudonym.

    Returns:
        ``reviewer-<user id>`` (``reviewer-unknown`` without one), or the address when asked.

    Example:
        >>> reviewer_name(3, {"email": "ann@example.org"})
        'reviewer-3'
    """
    if emails and (user.get("email") or user.get("username")):
        return str(user.get("email") or user.get("username"))
    try:
        return f"reviewer-{int(user_id)}"
    except (TypeError, ValueError):
        return "reviewer-unknown"


def _verdict(annotation: Mapping[str, Any]) -> str | None:
    for result in _results(annotation, ui.VERDICT):
        choice = _choice(result)
        if choice in ui.VERDICTS:
            return choice
    return None


def _comment(annotation: Mapping[str, Any]) -> str:
    texts: list[str] = []
    for result in _results(annotation, ui.COMMENT):
        texts += [str(t) for t in (result.get("value") or {}).get("text") or []]
    return "\n".join(t for t in texts if t.strip())


def _previous_review(row: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        value = json.loads(row.get(REVIEW) or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


_NOTHING_LOST = (
    "nothing was imported: the annotations stay in Label Studio project {project!r}; run the "
    "import again"
)


def _check_out(out: Path, overwrite: bool, project: str) -> None:
    """Refuse an ``--out`` that write_dataset would refuse, before any work is done."""
    from fslabels.dataset import DATASET_INFO

    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not (out / DATASET_INFO).is_file():
        raise FileExistsError(
            f"--out {out} exists and is not a label dataset (no {DATASET_INFO}); choose another "
            f"--out; {_NOTHING_LOST.format(project=project)}"
        )
    if not overwrite:
        raise FileExistsError(
            f"--out {out} already holds a label dataset; pass --overwrite to replace it or "
            f"choose another --out; {_NOTHING_LOST.format(project=project)}"
        )


def import_reviews(
    client: LabelStudio,
    project: str,
    dataset: str | os.PathLike[str] | Any,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    repo: str | None = None,
    tag: str | None = None,
    private: bool = False,
    hf_token: str | None = None,
    top_k: int = DEFAULT_TOP_K,
    overwrite: bool = False,
    reviewer_emails: bool = False,
) -> ImportResult:
    """Apply the finished annotations of ``project`` to ``dataset`` and write a new version.

    Args:
        client: the Label Studio connection.
        project: the review project's title.
        dataset: the version the tasks were exported from (spec or loaded dataset); usually the
            same version, or a later one holding the same sample_ids.
        out_dir: where the new version goes (a temporary directory when only ``repo`` is given).
        repo: push the new version to this Hub dataset repo (``org/name``) as the next tag.
        tag, private, hf_token: passed to `fslabels.dataset.push_dataset`.
        top_k: top frames per source in the agreement report.
        overwrite: replace a label dataset already at ``out_dir``.
        reviewer_emails: record reviewers' e-mail addresses instead of ``reviewer-<user id>``
            pseudonyms (they are published with the dataset when it is pushed).

    Returns:
        An `ImportResult` with the agreement report.

    Raises:
        LabelStudioError: the server is unreachable, refuses the token, or has no such project.
        ReviewImportError: annotations that cannot be applied (all listed; nothing written).
        FileExistsError: ``out_dir`` holds a label dataset and ``overwrite`` is off, or holds
            something else (checked first; the annotations stay in Label Studio).
        ValueError: a missing dataset version, or neither ``out_dir`` nor ``repo``.
    """
    from fslabels.dataset import load_dataset_version, push_dataset, write_dataset

    if out_dir is None and repo is None:
        raise ValueError("give --out DIR for the new version, --repo org/name, or both")
    loaded = dataset if hasattr(dataset, "rows") else load_dataset_version(dataset)
    if out_dir is not None:
        target = Path(out_dir).expanduser()
        if target.resolve() == Path(loaded.directory).resolve():
            raise ValueError(
                f"--out {target} is the dataset being reviewed; write the new version elsewhere"
            )
        _check_out(target, overwrite, project)
    version = dataset_version_id(loaded)
    project_data = client.find_project(project)
    tasks = client.tasks(int(project_data["id"]))
    users = client.users()
    by_sample = {row[SAMPLE_ID]: i for i, row in enumerate(loaded.rows)}

    problems: list[str] = []
    updates: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
    unreviewed = cancelled = 0
    for task in tasks:
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
        finished = [a for a in annotations if not a.get("was_cancelled")]
        cancelled += len(annotations) - len(finished)
        if not finished:
            unreviewed += 1
            continue
        block = (task.get("data") or {}).get(ui.TASK_KEY)
        where = f"task {task['id']}"
        if not isinstance(block, dict) or not block.get(SAMPLE_ID):
            problems.append(
                f"{where} did not come from framesel (its data has no {ui.TASK_KEY!r} block); "
                "remove it from the project or review it elsewhere"
            )
            continue
        sample_id = str(block[SAMPLE_ID])
        where = f"task {task['id']} (sample {sample_id})"
        if sample_id not in by_sample:
            problems.append(
                f"{where}: dataset {version} has no such sample (the task was exported from "
                f"{block.get('dataset')!r})"
            )
            continue
        row = loaded.rows[by_sample[sample_id]]
        if len(row[SCORES]) != int(block.get("num_candidates", -1)):
            problems.append(
                f"{where}: the task has {block.get('num_candidates')} candidates, the dataset row "
                f"{len(row[SCORES])}"
            )
            continue
        block = {**block, PREMARKED: premarked_positions(task["data"])}
        labels, reviewers, verdicts, comments, times, ids = [], [], [], [], [], []
        for annotation in finished:
            marks, found = human_labels(
                annotation, block, f"{where}, annotation {annotation.get('id')}"
            )
            problems += found
            labels.append(marks)
            user_id = annotation.get("completed_by")
            user = users.get(int(user_id or -1), {})
            reviewers.append(reviewer_name(user_id, user, emails=reviewer_emails))
            verdicts.append(_verdict(annotation))
            comments.append(_comment(annotation))
            times.append(str(annotation.get("updated_at") or annotation.get("created_at") or ""))
            ids.append(annotation.get("id"))
        given = [v for v in verdicts if v]
        verdict = max(set(given), key=lambda v: (given.count(v), v == "reject")) if given else None
        review: dict[str, Any] = {
            "reviewer": ", ".join(dict.fromkeys(reviewers)),
            "reviewers": len(finished),
            "time": max(times) if times else _now(),
            "verdict": verdict,
            "verdicts": verdicts,
            "comment": "\n".join(c for c in comments if c),
            "project": project_data.get("title"),
            "project_id": int(project_data["id"]),
            "task_id": int(task["id"]),
            "annotation_ids": ids,
            "exported_from": block.get("dataset"),
            "imported": _now(),
        }
        previous = _previous_review(row)
        if previous is not None and previous.get("annotation_ids") != ids:
            review["previous"] = previous
        elif previous is not None and "previous" in previous:
            review["previous"] = previous["previous"]
        updates[by_sample[sample_id]] = (np.mean(labels, axis=0).astype(np.float32), review)
    if problems:
        raise ReviewImportError(problems, project)
    if not updates:
        raise ValueError(
            f"project {project!r} has no finished annotations yet ({len(tasks)} tasks); "
            "nothing to import"
        )

    rows = [dict(r) for r in loaded.rows]
    for position, (human, review) in updates.items():
        rows[position][HUMAN] = [float(v) for v in human]
        rows[position][REVIEW] = json.dumps(review, sort_keys=True)
    report = agreement_report([rows[i] for i in sorted(updates)], k=top_k)
    info = dict(loaded.info or {})
    info["parent"] = {"version": version, "content_hash": (loaded.info or {}).get("content_hash")}
    note = (
        f"human review of {len(updates)} rows (Label Studio project "
        f"{project_data.get('title')!r}) on {version}; accept rate "
        f"{'–' if report.accept_rate is None else f'{100 * report.accept_rate:.0f}%'}"
    )
    sections = {
        REPORT_SECTION: report.to_markdown().replace(
            "assets/review_agreement.png", f"assets/{REPORT_ASSET}"
        )
    }
    assets = {REPORT_ASSET: report.to_png()}
    if out_dir is None:
        target = Path(tempfile.mkdtemp(prefix="framesel-review-")) / "dataset"
    try:
        written = write_dataset(
            target,
            rows,
            loaded.captions,
            run_config=loaded.run_config,
            info=info,
            extra_sections=sections,
            assets=assets,
            note=note,
            overwrite=overwrite,
        )
    except FileExistsError as err:  # --out appeared meanwhile
        raise FileExistsError(f"{err}; {_NOTHING_LOST.format(project=project)}") from err
    result = ImportResult(
        out_dir=written,
        reviewed=[loaded.rows[i][SAMPLE_ID] for i in sorted(updates)],
        unreviewed_tasks=unreviewed,
        report=report,
        version=version,
        skipped_cancelled=cancelled,
    )
    if repo is not None:
        # A failed push keeps the staged version (its path is in the traceback's result), so
        # nothing is lost; a pushed one staged in a temporary directory is not left behind.
        result.push = push_dataset(written, repo, tag=tag, private=private, token=hf_token)
        if out_dir is None:
            shutil.rmtree(written.parent, ignore_errors=True)
            result.out_dir = None
    return result
