"""Export sampled rows of a label dataset version to a Label Studio project for review.

Each sampled (video, question) row becomes one task: the question, a browser-playable clip,
the candidate frames (one-at-a-time gallery with a per-frame choice, plus a contact sheet of all
of them), the score curve, and the pseudo-labels as a prediction tagged with the dataset version
(``framesel:<version>``): the fused top-k candidates marked relevant, as frames and as ranges on
the clip's timeline.

Media go to the server's Local Files document root (``media_root``): Label Studio serves them
only to the project's users, and export checks that it really does before creating any task.

Each task's ``framesel`` data block records the dataset version it shows and the candidate
positions pre-marked relevant (``premarked``), so import reads an *accept* without marks as
exactly the frames the reviewer was shown, whatever version the reviews are imported onto.

Exporting again is idempotent: tasks are keyed by ``sample_id``; a row already in the project
is not added twice. Exporting another version of rows already in the project moves their tasks
to that version (score curve, contact sheet, ``dataset`` and ``premarked`` in the data, the
prediction replaced) as long as nobody has annotated them and the candidate frames are the same;
otherwise export refuses before it changes anything, since the finished annotations were made
against what the task showed (export that version to a new project instead).

Example:
    >>> with LabelStudio(url, token) as ls:  # doctest: +SKIP
    ...     result = export_for_review("labels/", ls, videos="videos/", media_root="/srv/ls-files",
    ...                                sample=50, strategy="disagree")
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from fslabels._hashing import stable_hash
from fslabels.review import config as ui
from fslabels.review.agreement import DEFAULT_TOP_K, top_frames
from fslabels.review.client import LabelStudio, LabelStudioError, ProjectNotFound
from fslabels.review.sampling import sample_rows
from fsmodel.schema import (
    ANSWER,
    FRAME_INDICES,
    OPTIONS,
    QUESTION,
    SAMPLE_ID,
    SCORES,
    SPATIAL,
    TEMPORAL,
    TIMESTAMPS,
    VIDEO,
    VIDEO_ID,
)

__all__ = [
    "PREMARKED",
    "ExportResult",
    "ReviewExportError",
    "build_task",
    "candidate_frame_numbers",
    "dataset_version_id",
    "ensure_project",
    "export_for_review",
    "prediction_result",
]

MEDIA_DIR = "framesel"
# Key of the task's framesel block holding the candidate positions pre-marked relevant.
PREMARKED = "premarked"
LOCAL_FILES_URL = "/data/local-files/?d="


@dataclass
class ExportResult:
    """What `export_for_review` did.

    Attributes:
        project_id, project_title: the project.
        project_url: where a reviewer opens it.
        version: the dataset version the predictions are tagged with.
        sampled: sample_ids picked for review, in priority order.
        created: new task id per sample_id.
        existing: task id per sample_id that was already in the project.
        updated: existing tasks (ids) moved to this version: data refreshed, prediction replaced.
    """

    project_id: int
    project_title: str
    project_url: str
    version: str
    sampled: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    updated: list[int] = field(default_factory=list)


def dataset_version_id(loaded: Any) -> str:
    """A short, public name of a loaded dataset version: ``org/name@v2`` for Hub versions (and
    for directories pulled from one), else ``<dir name>#<content hash prefix>``."""
    ref, info = loaded.ref, loaded.info or {}
    if not ref.local:
        return f"{ref.source}@{ref.revision or 'main'}"
    digest = str(info.get("content_hash") or "")
    history = info.get("history") or []
    if info.get("repo_id") and history and history[-1].get("content_hash") == digest:
        return f"{info['repo_id']}@{history[-1]['version']}"
    return f"{Path(ref.source).name}#{digest[:12] or 'unversioned'}"


def candidate_frame_numbers(timestamps: Sequence[float], fps: float) -> np.ndarray:
    """The 1-based frame number on Label Studio's video timeline of each candidate.

    Timestamps count from the first shown frame (as `fsmodel.video` reports them), and the
    timeline shows frame ``round(t · fps) + 1`` at time ``t``.
    """
    return np.rint(np.asarray(timestamps, dtype=np.float64) * fps).astype(np.int64) + 1


def prediction_result(
    row: Mapping[str, Any], fps: float, k: int = DEFAULT_TOP_K
) -> tuple[list[dict[str, Any]], float]:
    """The pseudo-labels as Label Studio results: the fused top-k candidates chosen ``relevant``
    per frame, and one timeline range per run of consecutive top candidates.

    Returns:
        ``(result, score)``; the score is the mean fused score of the top candidates.
    """
    scores = np.asarray(row[SCORES], dtype=np.float64)
    top = top_frames(scores, k)
    result: list[dict[str, Any]] = [
        {
            "id": f"f{int(i)}",
            "from_name": ui.FRAME_CHOICE,
            "to_name": ui.FRAMES,
            "type": "choices",
            "value": {"choices": [ui.RELEVANT]},
            "item_index": int(i),
        }
        for i in top
    ]
    numbers = candidate_frame_numbers(row[TIMESTAMPS], fps)
    runs: list[list[int]] = []
    for i in top.tolist():
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        result.append(
            {
                "id": f"r{run[0]}",
                "from_name": ui.RANGES,
                "to_name": ui.VIDEO,
                "type": "timelinelabels",
                "value": {
                    "ranges": [{"start": int(numbers[run[0]]), "end": int(numbers[run[-1]])}],
                    "timelinelabels": [ui.RELEVANT],
                },
            }
        )
    return result, float(scores[top].mean()) if top.size else 0.0


def _context(row: Mapping[str, Any]) -> str:
    parts = []
    if row.get(OPTIONS):
        parts.append("Options: " + " · ".join(str(o) for o in row[OPTIONS]))
    if row.get(ANSWER):
        parts.append(f"Answer: {row[ANSWER]}")
    parts.append(f"Video: {row[VIDEO]} · {len(row[SCORES])} candidate frames")
    return "\n".join(parts)


def build_task(
    row: Mapping[str, Any],
    version: str,
    media: Mapping[str, Any],
    fps: float,
    num_frames: int,
    k: int = DEFAULT_TOP_K,
) -> dict[str, Any]:
    """One Label Studio task (data + prediction) for a label row.

    Args:
        row: the label row.
        version: the dataset version id (`dataset_version_id`).
        media: ``{"video": url, "frames": [url, …], "sheet": url}``.
        fps: the clip's frame rate (the timeline's frame numbering).
        num_frames: frames in the video (ranges beyond it are refused on import).
        k: candidates pre-marked relevant.
    """
    n = len(row[SCORES])
    result, score = prediction_result(row, fps, k)
    premarked = [int(i) for i in top_frames(row[SCORES], k)]
    return {
        "data": {
            QUESTION: row[QUESTION],
            "context": _context(row),
            VIDEO: media["video"],
            "fps": fps,
            "frames": list(media["frames"]),
            "sheet": media["sheet"],
            "scores": {
                "candidate": list(range(n)),
                "fused": [round(float(v), 4) for v in row[SCORES]],
                "spatial": [round(float(v), 4) for v in row[SPATIAL]],
                "temporal": [round(float(v), 4) for v in row[TEMPORAL]],
            },
            ui.TASK_KEY: {
                SAMPLE_ID: row[SAMPLE_ID],
                VIDEO_ID: row[VIDEO_ID],
                VIDEO: row[VIDEO],
                "dataset": version,
                "num_candidates": n,
                FRAME_INDICES: [int(v) for v in row[FRAME_INDICES]],
                TIMESTAMPS: [float(v) for v in row[TIMESTAMPS]],
                "fps": fps,
                "num_frames": num_frames,
                "top_k": k,
                PREMARKED: premarked,
            },
        },
        "predictions": [
            {"model_version": _model_version(version), "score": score, "result": result}
        ],
    }


def _model_version(version: str) -> str:
    return f"framesel:{version}"


def _is_framesel_config(label_config: str) -> bool:
    names = (ui.RANGES, ui.FRAME_CHOICE, ui.VERDICT, ui.FRAMES)
    return all(re.search(rf'name="{re.escape(n)}"', label_config) for n in names)


def ensure_project(client: LabelStudio, title: str) -> tuple[dict[str, Any], bool]:
    """The framesel review project titled ``title``, created when missing.

    Returns:
        ``(project, created)``.

    Raises:
        LabelStudioError: a project of that title exists but is not a framesel review project.
    """
    try:
        project = client.find_project(title)
    except ProjectNotFound:
        return client.create_project(title, ui.label_config(), _DESCRIPTION), True
    if not _is_framesel_config(project.get("label_config") or ""):
        raise LabelStudioError(
            f"project {title!r} (id {project['id']}) at {client.url} exists but is not a framesel "
            "review project (its labelling config lacks framesel's controls); choose another "
            "--project"
        )
    if project.get("label_config") != ui.label_config():
        project = client.update_project(project["id"], label_config=ui.label_config())
    return project, False


_DESCRIPTION = (
    "framesel review: mark the time ranges or candidate frames that help answer each question, "
    "then accept or reject the pseudo-labels (pre-annotated as a prediction)."
)


def _media_url(media_root: Path, path: Path) -> str:
    return LOCAL_FILES_URL + quote(path.relative_to(media_root).as_posix(), safe="/")


def _video_path(row: Mapping[str, Any], videos: Path) -> Path:
    video = str(row[VIDEO])
    if re.match(r"^[a-z][a-z0-9+.-]*://", video, re.I):
        raise ValueError(
            f"sample {row[SAMPLE_ID]}: video {video!r} is a URL; review export needs the video "
            "files on disk (download them and pass their directory as --videos)"
        )
    path = videos / video
    if not path.is_file():
        raise FileNotFoundError(
            f"sample {row[SAMPLE_ID]}: video {video!r} not found under --videos {videos}"
        )
    return path


@dataclass
class _VideoMedia:
    frames: np.ndarray
    frame_urls: list[str]
    clip_url: str
    fps: float
    num_frames: int


def _write_media(
    row: Mapping[str, Any],
    video: Path,
    folder: Path,
    media_root: Path,
    frame_size: int | None,
    cache: dict[str, _VideoMedia],
) -> dict[str, Any]:
    """Write (once per video) the clip and candidate frames, and the row's contact sheet."""
    from fslabels.review.media import browser_clip, candidate_images, contact_sheet, encode_jpeg

    n = len(row[SCORES])
    key = stable_hash([row[VIDEO_ID], row[VIDEO], n], length=12)
    video_dir = folder / key
    if key not in cache:
        frames, candidates = candidate_images(video, row[FRAME_INDICES], short_side=frame_size)
        video_dir.mkdir(parents=True, exist_ok=True)
        urls = []
        for i, frame in enumerate(frames):
            path = video_dir / f"frame_{i:04d}.jpg"
            path.write_bytes(encode_jpeg(frame))
            urls.append(_media_url(media_root, path))
        clip = browser_clip(video, video_dir)
        cache[key] = _VideoMedia(
            frames,
            urls,
            _media_url(media_root, clip),
            float(candidates.fps),
            int(candidates.num_frames),
        )
    media = cache[key]
    # Named by the scores too: moving a task to another version gives it a new sheet and
    # never changes what an older task's URL shows.
    digest = stable_hash([float(v) for v in row[SCORES]], length=8)
    sheet = video_dir / f"sheet_{row[SAMPLE_ID]}_{digest}.jpg"
    sheet.write_bytes(contact_sheet(media.frames, row[FRAME_INDICES], row[SCORES]))
    return {
        "video": media.clip_url,
        "frames": media.frame_urls,
        "sheet": _media_url(media_root, sheet),
        "fps": media.fps,
        "num_frames": media.num_frames,
    }


def _check_served(client: LabelStudio, url: str, media_root: Path) -> None:
    status = client.fetch_status(url)
    if status != 200:
        raise LabelStudioError(
            f"Label Studio at {client.url} does not serve the exported media (GET {url} answered "
            f"{status}); start it with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
            f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={media_root} (the --media-root given here)"
        )


class ReviewExportError(ValueError):
    """Export would change tasks that cannot be changed; nothing was changed."""


def _finished(task: Mapping[str, Any]) -> list[dict[str, Any]]:
    annotations = task.get("annotations") or []
    return [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]


def _tasks_to_move(
    rows: Sequence[Mapping[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
    version: str,
    title: str,
) -> dict[str, Mapping[str, Any]]:
    """The existing tasks of ``rows`` that show another dataset version and can be moved to
    ``version`` (no finished annotation, the same candidate frames).

    Raises:
        ReviewExportError: some cannot be moved (all listed; nothing changed).
    """
    movable: dict[str, Mapping[str, Any]] = {}
    problems: list[str] = []
    for row in rows:
        task = existing.get(row[SAMPLE_ID])
        if task is None:
            continue
        block = task["data"][ui.TASK_KEY]
        if block.get("dataset") == version:
            continue
        where = (
            f"task {task['id']} (sample {row[SAMPLE_ID]}, exported from {block.get('dataset')!r})"
        )
        finished = _finished(task)
        if finished:
            problems.append(f"{where} has {len(finished)} finished annotation(s)")
        elif [int(v) for v in block.get(FRAME_INDICES) or []] != [
            int(v) for v in row[FRAME_INDICES]
        ]:
            problems.append(f"{where} shows other candidate frames than {version}")
        else:
            movable[row[SAMPLE_ID]] = task
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ReviewExportError(
            f"project {title!r} already has tasks for {len(problems)} of the sampled rows that "
            f"cannot be moved to {version}; nothing was changed:\n{shown}{more}\n"
            "Reviews are read against what their task showed: import them first "
            "(`framesel review import`), or export this version to a new --project."
        )
    return movable


def _move_task(client: LabelStudio, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Show ``new`` (a `build_task` of another version) in the existing task ``old``: its
    prediction first, then its data, then the earlier framesel predictions go."""
    task_id = int(old["id"])
    (prediction,) = new["predictions"]
    client.create_prediction(
        task_id, prediction["result"], prediction["model_version"], prediction["score"]
    )
    client.update_task(task_id, new["data"])
    for earlier in old.get("predictions") or []:
        if (
            isinstance(earlier, dict)
            and str(earlier.get("model_version") or "").startswith("framesel:")
            and earlier.get("model_version") != prediction["model_version"]
        ):
            client.delete_prediction(int(earlier["id"]))


def export_for_review(
    dataset: str | os.PathLike[str] | Any,
    client: LabelStudio,
    *,
    videos: str | os.PathLike[str],
    media_root: str | os.PathLike[str],
    project: str | None = None,
    sample: int | None = None,
    strategy: str = "random",
    seed: int = 0,
    top_k: int = DEFAULT_TOP_K,
    frame_size: int | None = 360,
) -> ExportResult:
    """Create (or reuse) a review project and add the sampled rows as tasks.

    Args:
        dataset: a dataset spec (directory or ``org/name@revision``) or a loaded version.
        client: the Label Studio connection.
        videos: the directory the rows' ``video`` paths are relative to.
        media_root: the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``; media are written
            under ``<media_root>/framesel/project-<id>/``.
        project: the project title (default ``framesel review · <dataset>``).
        sample: rows to pick (None: all not yet reviewed).
        strategy: ``random``, ``uncertain`` or ``disagree``.
        seed: the sampling seed.
        top_k: candidates pre-marked relevant per task.
        frame_size: short side of the gallery images (never upscaled).

    Returns:
        An `ExportResult`.

    Raises:
        LabelStudioError: the server is unreachable, refuses the token, does not serve the media,
            or the project is not a framesel project.
        ReviewExportError: sampled rows already have tasks of another version that cannot be
            moved to this one (annotated, or other candidate frames); nothing is changed.
        ValueError / FileNotFoundError: a missing dataset version, video or bad option.
    """
    from fslabels.dataset import load_dataset_version

    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    loaded = dataset if hasattr(dataset, "rows") else load_dataset_version(dataset)
    version = dataset_version_id(loaded)
    rows = loaded.rows
    picked = [rows[i] for i in sample_rows(rows, sample, strategy=strategy, seed=seed)]
    video_root = Path(videos).expanduser().resolve()
    root = Path(media_root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--media-root {root} is not a directory")
    sources = {row[SAMPLE_ID]: _video_path(row, video_root) for row in picked}  # fail early

    client.whoami()  # URL and token, before anything is created
    title = project or f"framesel review · {version}"
    project_data, _ = ensure_project(client, title)
    project_id = int(project_data["id"])
    result = ExportResult(
        project_id=project_id,
        project_title=title,
        project_url=f"{client.url}/projects/{project_id}/data",
        version=version,
        sampled=[row[SAMPLE_ID] for row in picked],
    )
    existing = {}
    for task in client.tasks(project_id):
        block = (task.get("data") or {}).get(ui.TASK_KEY)
        if isinstance(block, dict) and block.get(SAMPLE_ID):
            existing[block[SAMPLE_ID]] = task
    stale = _tasks_to_move(picked, existing, version, title)  # refuses before any change
    folder = root / MEDIA_DIR / f"project-{project_id}"
    folder.mkdir(parents=True, exist_ok=True)
    if not any(Path(s.get("path", "")) == folder for s in client.local_storages(project_id)):
        try:
            client.create_local_storage(project_id, str(folder), title="framesel media")
        except LabelStudioError as err:
            raise LabelStudioError(
                f"Label Studio at {client.url} does not serve the exported media: it refused a "
                f"Local Files storage over {folder} ({err}). Start it with "
                "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
                f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} (the --media-root given here)"
            ) from err

    cache: dict[str, _VideoMedia] = {}
    tasks, checked = [], False
    for row in picked:
        sample_id = row[SAMPLE_ID]
        if sample_id in existing and sample_id not in stale:
            result.existing[sample_id] = int(existing[sample_id]["id"])
            continue
        media = _write_media(row, sources[sample_id], folder, root, frame_size, cache)
        if not checked:  # one served file proves the storage and document root are right
            _check_served(client, media["frames"][0], root)
            checked = True
        task = build_task(row, version, media, media["fps"], media["num_frames"], top_k)
        if sample_id in stale:
            _move_task(client, stale[sample_id], task)
            result.existing[sample_id] = int(stale[sample_id]["id"])
            result.updated.append(int(stale[sample_id]["id"]))
        else:
            tasks.append(task)
    if tasks:
        ids = client.import_tasks(project_id, tasks)
        if len(ids) != len(tasks):
            raise LabelStudioError(
                f"project {title!r}: importing {len(tasks)} tasks returned {len(ids)} task ids"
            )
        for task, task_id in zip(tasks, ids, strict=True):
            result.created[task["data"][ui.TASK_KEY][SAMPLE_ID]] = task_id
    return result
