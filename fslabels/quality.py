"""How good are the labels? A label dataset scored against per-question relevance truth.

Truth is what grounding datasets (NExT-GQA, Charades-STA, QVHighlights) publish: time spans in
seconds per question. A JSONL file, one question per line::

    {"sample_id": "f5e157c19d4ba3b1", "kind": "presence", "spans": [[1.75, 2.875], [6.6, 7.75]]}
    {"video": "a.mp4", "question": "When does the red circle appear?", "spans": [[3.0, 4.5]]}

keyed by ``sample_id``, or by ``video`` and ``question``; ``kind`` (optional) groups the report.
Each span ``[start, end)`` marks the candidates whose timestamps fall inside it
(`fsmodel.metrics.candidates_in_spans`; a span with no candidate inside takes the nearest one
and is counted as flagged).

For each source (``spatial``, ``temporal``, ``fused`` = the ``scores`` column, and ``human`` on
reviewed rows) and each kind, the report gives the mean over questions of:

- ``auc``: ROC-AUC of the source's scores for "inside a span" (ties count half);
- ``recall@k`` and ``precision@k`` of the k highest-scoring candidates (`fsmodel.metrics`);
- ``coverage@k``: the share of the truth spans that get at least one of those k.

Temporal labels are 0/1, so the k highest tie: the top-k metrics are their expected value over
a uniformly random order among ties (`fsmodel.metrics.expected_top_k`, computed exactly).

Example:
    >>> report = score_labels("labels-v1", "truth.jsonl", k=8)  # doctest: +SKIP
    >>> report.table["fused"]["all"]["auc"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fsmodel.metrics import candidates_in_spans, expected_top_k, roc_auc
from fsmodel.schema import HUMAN, QUESTION, SAMPLE_ID, SCORES, SPATIAL, TEMPORAL, TIMESTAMPS, VIDEO

__all__ = [
    "METRICS",
    "PICK_METRICS",
    "QUALITY_SECTION",
    "SOURCES",
    "QualityReport",
    "SelectionReport",
    "TruthError",
    "add_to_card",
    "read_truth",
    "score_labels",
    "score_picks",
]

# Report name → the column it reads.
SOURCES = {"spatial": SPATIAL, "temporal": TEMPORAL, "fused": SCORES, "human": HUMAN}
METRICS = ("auc", "recall", "precision", "coverage")
ALL = "all"
QUALITY_SECTION = "Label quality against truth"
QUALITY_PLOT = "label_quality.png"


class TruthError(ValueError):
    """The truth file has problems; the message lists each, by line."""


@dataclass(frozen=True)
class _Truth:
    line: int
    kind: str
    spans: tuple[tuple[float, float], ...]


def read_truth(path: str | os.PathLike[str]) -> dict[Any, _Truth]:
    """The truth file's questions, keyed by sample id or by ``(video, question)``.

    Raises:
        FileNotFoundError: no such file.
        TruthError: every malformed line (not JSON, no key, no spans, a span that is not two
            numbers, ends before it starts, or starts before 0), one per line of the message.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"truth file {path} does not exist")
    truth: dict[Any, _Truth] = {}
    problems: list[str] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            problems.append(f"{where}: not JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{where}: expected an object, got {type(record).__name__}")
            continue
        if isinstance(record.get("sample_id"), str):
            key: Any = record["sample_id"]
        elif isinstance(record.get("video"), str) and isinstance(record.get("question"), str):
            key = (record["video"], record["question"])
        else:
            problems.append(f"{where}: needs a sample_id, or a video and a question")
            continue
        spans = record.get("spans")
        if not isinstance(spans, list) or not spans:
            problems.append(f"{where}: spans must be a non-empty list of [start, end] in seconds")
            continue
        bad = _span_problem(spans)
        if bad:
            problems.append(f"{where}: {bad}")
            continue
        if key in truth:
            problems.append(f"{where}: {key!r} again (first on line {truth[key].line})")
            continue
        kind = record.get("kind", ALL)
        truth[key] = _Truth(number, str(kind), tuple((float(s), float(e)) for s, e in spans))
    if problems:
        raise TruthError(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems))
    return truth


def _span_problem(spans: list[Any]) -> str | None:
    for i, span in enumerate(spans):
        numbers = isinstance(span, (list, tuple)) and len(span) == 2
        if not numbers or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in span
        ):
            return f"span {i} must be [start, end] in seconds, got {span!r}"
        start, end = span
        if start < 0:
            return f"span {i} [{start}, {end}] starts before the video (at {start} s)"
        if end <= start:
            return f"span {i} [{start}, {end}] ends before it starts"
    return None


@dataclass
class QualityReport:
    """The scores of one label dataset against truth (see the module docstring).

    Attributes:
        k: the pick budget of the top-k metrics.
        table: ``{source: {kind: {"auc", "recall", "precision", "coverage", "questions"}}}``;
            kind ``"all"`` pools every question.
        questions: questions scored.
        flagged_spans: truth spans with no candidate inside (mapped to the nearest candidate).
        unscored: dataset rows without truth.
        per_question: ``[{sample_id, kind, source: {metric: value}}]``.
    """

    k: int
    table: dict[str, dict[str, dict[str, float]]]
    questions: int
    flagged_spans: int
    unscored: int
    per_question: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "questions": self.questions,
            "flagged_spans": self.flagged_spans,
            "unscored": self.unscored,
            "table": self.table,
        }

    def markdown(self, plot: str | None = None) -> str:
        """The report as a card section: a table per source and kind (and the plot, if given)."""
        metrics = " | ".join(m if m == "auc" else f"{m}@{self.k}" for m in METRICS)
        lines = [
            f"Scored against per-question truth spans ({self.questions} questions, k = "
            f"{self.k}; `framesel labels score`). Ties count at their expected value.",
            "",
            f"| source | kind | {metrics} | questions |",
            "|---|---|" + "---:|" * (len(METRICS) + 1),
        ]
        for source, by_kind in self.table.items():
            for kind in self.kinds():
                if kind in by_kind:
                    got = by_kind[kind]
                    cells = " | ".join(f"{got.get(m, float('nan')):.3f}" for m in METRICS)
                    lines.append(f"| {source} | {kind} | {cells} | {got['questions']} |")
        if plot:
            lines += ["", f"![label quality]({plot})"]
        return "\n".join(lines)

    def kinds(self) -> list[str]:
        found = {kind for by_kind in self.table.values() for kind in by_kind}
        return [*sorted(found - {ALL}), ALL]

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """A bar chart per metric: each source's value per question kind (a PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        kinds, sources = self.kinds(), list(self.table)
        fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.2), sharey=True)
        width = 0.8 / max(1, len(sources))
        for ax, metric in zip(axes, METRICS, strict=True):
            for s, source in enumerate(sources):
                values = [self.table[source].get(kind, {}).get(metric, np.nan) for kind in kinds]
                ax.bar(np.arange(len(kinds)) + s * width, values, width, label=source)
            ax.set_xticks(np.arange(len(kinds)) + width * (len(sources) - 1) / 2, kinds)
            label = metric if metric == "auc" else f"{metric}@{self.k}"
            ax.set_title(label)
            ax.set_ylim(0, 1.05)
        axes[0].legend(fontsize="small", loc="lower left")
        fig.suptitle(f"labels vs truth ({self.questions} questions)")
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out


def score_labels(
    dataset: str | os.PathLike[str],
    truth: str | os.PathLike[str] | Mapping[Any, _Truth],
    k: int = 8,
    revision: str | None = None,
) -> QualityReport:
    """Score a label dataset (a directory or ``org/name[@rev]``) against a truth file.

    Raises:
        TruthError: the truth file is malformed, names questions the dataset does not have, or
            has spans that start after the video ends (each listed with its line).
        ValueError: ``k`` is not a pick budget for these rows, or nothing could be scored.
    """
    from fslabels.dataset import load_dataset_version

    if isinstance(truth, Mapping):
        known, source_name = dict(truth), "truth"
    else:
        known, source_name = read_truth(truth), Path(truth).name
    loaded = load_dataset_version(str(dataset), revision=revision)
    return score_rows(loaded.rows, known, k=k, source_name=source_name)


def _match_truth(
    records: list[Mapping[str, Any]],
    truth: Mapping[Any, _Truth],
    source_name: str,
    missing_ok: bool = False,
) -> tuple[list[tuple[Mapping[str, Any], _Truth]], int]:
    """Pair each truth line with its record (``sample_id``, ``video``, ``question`` and the
    candidates' ``timestamps``); every truth line that names an unknown question (unless
    ``missing_ok``: then they are counted) or has a span starting after the video ends is one
    problem of the `TruthError`. Returns the pairs and the count of truth lines without one."""
    by_id = {r[SAMPLE_ID]: r for r in records}
    by_pair = {(r[VIDEO], r[QUESTION]): r for r in records}
    problems = []
    matched: list[tuple[Mapping[str, Any], _Truth]] = []
    missing = 0
    for key, item in truth.items():
        record = by_id.get(key) if isinstance(key, str) else by_pair.get(key)
        if record is None and missing_ok:
            missing += 1
            continue
        if record is None:
            what = f"sample_id {key!r}" if isinstance(key, str) else f"video/question {key!r}"
            problems.append(f"{source_name}:{item.line}: {what} is not in the dataset")
            continue
        stamps = np.asarray(record[TIMESTAMPS], np.float64)
        step = float(np.median(np.diff(stamps))) if stamps.size > 1 else 0.0
        end = float(stamps[-1]) + step
        late = [s for s in item.spans if s[0] >= end]
        if late:
            problems.append(
                f"{source_name}:{item.line}: span [{late[0][0]}, {late[0][1]}] starts after the "
                f"video ends (about {end:.2f} s)"
            )
            continue
        matched.append((record, item))
    if problems:
        raise TruthError(f"{len(problems)} problem(s) with the truth\n" + "\n".join(problems))
    if not matched:
        raise ValueError("no dataset row has truth: nothing to score")
    return matched, missing


def score_rows(
    rows: Iterable[Mapping[str, Any]],
    truth: Mapping[Any, _Truth],
    k: int = 8,
    source_name: str = "truth",
) -> QualityReport:
    """`score_labels` on rows in memory (schema v1 label rows)."""
    rows = list(rows)
    matched, _ = _match_truth(rows, truth, source_name)
    values: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    per_question, flagged = [], 0
    for row, item in matched:
        n = len(row[TIMESTAMPS])
        if not 1 <= k <= n:
            raise ValueError(f"k must be in 1..{n} (the candidates of each row), got {k}")
        groups, missed = candidates_in_spans(item.spans, np.asarray(row[TIMESTAMPS]))
        flagged += len(missed)
        entry: dict[str, Any] = {"sample_id": row[SAMPLE_ID], "kind": item.kind}
        for source, column in SOURCES.items():
            scores = row.get(column)
            if scores is None or len(scores) != n:  # human: only on reviewed rows
                continue
            scores = np.asarray(scores, np.float64)
            got = {"auc": roc_auc(scores, groups >= 0), **expected_top_k(scores, k, groups)}
            entry[source] = got
            for kind in dict.fromkeys((item.kind, ALL)):
                for metric, value in got.items():
                    if not math.isnan(value):
                        values[source][kind][metric].append(value)
        per_question.append(entry)
    table = {source: _means(by_kind) for source, by_kind in values.items()}
    return QualityReport(k, table, len(matched), flagged, len(rows) - len(matched), per_question)


# --- selections against truth -----------------------------------------------------------------

PICK_METRICS = ("recall", "precision", "coverage")


@dataclass
class SelectionReport:
    """The picks of a selections dataset against truth
    (`fslabels.evaluation.selections.score_selections`).

    Attributes:
        table: ``{strategy: {k: {kind: {"recall", "precision", "coverage", "questions"}}}}``
            (means over questions of the picks' recall@k, precision@k, coverage@k); kind
            ``"all"`` pools every question.
        questions: questions scored.
        flagged_spans: truth spans with no candidate inside (mapped to the nearest candidate).
        unscored: questions of the selections without truth.
        missing: truth questions without picks (not in the selections; a selection run leaves
            out the questions it failed on).
        per_question: ``[{sample_id, kind, strategy, k, recall, precision, coverage}]``.
    """

    table: dict[str, dict[int, dict[str, dict[str, float]]]]
    questions: int
    flagged_spans: int
    unscored: int
    missing: int = 0
    per_question: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "flagged_spans": self.flagged_spans,
            "unscored": self.unscored,
            "missing": self.missing,
            "table": {s: {str(k): v for k, v in by_k.items()} for s, by_k in self.table.items()},
        }

    def kinds(self) -> list[str]:
        found = {kind for by_k in self.table.values() for by in by_k.values() for kind in by}
        return [*sorted(found - {ALL}), ALL]


def score_picks(
    picks: Iterable[Mapping[str, Any]],
    videos: Iterable[Mapping[str, Any]],
    truth: Mapping[Any, _Truth],
    source_name: str = "truth",
) -> SelectionReport:
    """A selections dataset's ``picks`` and ``videos`` rows (in memory) against truth
    (`fslabels.evaluation.selections.score_selections` reads them from the dataset)."""
    from fsmodel.metrics import coverage_at_k, precision_at_k, recall_at_k

    picks = list(picks)
    stamps = {v["video"]: v["timestamps"] for v in videos}
    questions: dict[str, dict[str, Any]] = {}
    for row in picks:
        if row["sample_id"] not in questions and row["video"] in stamps:
            questions[row["sample_id"]] = {SAMPLE_ID: row["sample_id"], VIDEO: row["video"],
                                           QUESTION: row["question"],
                                           TIMESTAMPS: stamps[row["video"]]}  # fmt: skip
    # A selection run leaves out the questions it failed on: truth for them is counted.
    matched, missing = _match_truth(list(questions.values()), truth, source_name, missing_ok=True)
    groups_of, flagged = {}, 0
    for record, item in matched:
        groups, missed = candidates_in_spans(item.spans, np.asarray(record[TIMESTAMPS]))
        groups_of[record[SAMPLE_ID]] = (groups, item.kind)
        flagged += len(missed)
    values: dict[str, dict[int, dict[str, dict[str, list[float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )
    per_question = []
    for row in picks:
        if row["sample_id"] not in groups_of:
            continue
        groups, kind = groups_of[row["sample_id"]]
        chosen = np.asarray(row["positions"], np.int64)
        relevant = np.flatnonzero(groups >= 0)
        got = {
            "recall": recall_at_k(chosen, relevant),
            "precision": precision_at_k(chosen, relevant),
            "coverage": coverage_at_k(chosen, groups),
        }
        k = int(row["k"])
        per_question.append({"sample_id": row["sample_id"], "kind": kind,
                             "strategy": row["strategy"], "k": k, **got})  # fmt: skip
        for group in dict.fromkeys((kind, ALL)):
            for metric, value in got.items():
                if not math.isnan(value):
                    values[row["strategy"]][k][group][metric].append(value)
    table = {
        strategy: {k: _means(by_kind) for k, by_kind in sorted(by_k.items())}
        for strategy, by_k in values.items()
    }
    return SelectionReport(table, len(matched), flagged, len(questions) - len(matched),
                           missing, per_question)  # fmt: skip


def _means(by_kind: Mapping[str, Mapping[str, list[float]]]) -> dict[str, dict[str, float]]:
    """``{kind: {metric: mean, "questions": count}}`` of per-question values by kind."""
    return {
        kind: {
            **{m: float(np.mean(v)) for m, v in metrics.items()},
            "questions": max((len(v) for v in metrics.values()), default=0),
        }
        for kind, metrics in sorted(by_kind.items())
    }


def add_to_card(directory: str | os.PathLike[str], report: QualityReport) -> Path:
    """Rewrite a local label dataset with the report as a card section (and its plot under
    ``assets/``); rows, captions, run config and history stay as they are.

    Raises:
        ValueError: ``directory`` is not a label dataset directory framesel wrote.
    """
    import tempfile

    from fslabels.dataset import DATASET_INFO, load_dataset_version, write_dataset

    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"--card writes into a local dataset directory; {directory} is not one")
    if not (path / DATASET_INFO).is_file():
        raise ValueError(
            f"{directory} has no {DATASET_INFO}: --card rewrites datasets made by "
            "`framesel labels build` (or a review import)"
        )
    loaded = load_dataset_version(str(path))
    with tempfile.TemporaryDirectory(prefix="framesel-quality-") as scratch:
        png = report.plot(Path(scratch) / QUALITY_PLOT).read_bytes()
    return write_dataset(
        path,
        loaded.rows,
        loaded.captions,
        run_config=loaded.run_config,
        info=loaded.info,
        extra_sections={QUALITY_SECTION: report.markdown(f"assets/{QUALITY_PLOT}")},
        assets={QUALITY_PLOT: png},
        overwrite=True,
    )
