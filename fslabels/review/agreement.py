"""How well the pseudo-labels agree with the reviewers: accept rate, precision and recall of each
source's top frames against the frames the reviewers marked, and the worst disagreements.

For one reviewed row, the human frames are the candidates with ``human >= 0.5`` (a majority of
its reviewers marked them). A source's top frames are its ``k`` highest-scoring candidates (ties
go to the earlier candidate, as `fsmodel.selection.topk` breaks them). Then

    precision = |top ∩ human| / |top|        recall = |top ∩ human| / |human|

summed over rows before dividing (micro-averages), so every frame counts once. Rows whose
reviewers marked nothing count towards precision (every top frame is wrong) but not recall.
The sources are ``spatial``, ``temporal`` and ``fused`` (the ``scores`` column).

Example:
    >>> report = agreement_report(rows, k=8)  # doctest: +SKIP
    >>> print(report.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fsmodel._imports import require
from fsmodel.schema import HUMAN, QUESTION, REVIEW, SAMPLE_ID, SCORES, SPATIAL, TEMPORAL
from fsmodel.selection import topk

__all__ = ["SOURCES", "AgreementReport", "SourceAgreement", "agreement_report", "top_frames"]

SOURCES: dict[str, str] = {"spatial": SPATIAL, "temporal": TEMPORAL, "fused": SCORES}
DEFAULT_TOP_K = 8
_WORST = 5


def top_frames(scores: Sequence[float], k: int) -> np.ndarray:
    """The ``min(k, n)`` highest-scoring candidate positions, ascending (`fsmodel.selection.topk`,
    ties to the earlier candidate), for a ``k`` that may exceed the row's n."""
    values = np.asarray(scores, dtype=np.float64)
    if k < 1:
        raise ValueError(f"top-k must be at least 1, got {k}")
    return topk(values, min(k, values.size))


def human_frames(human: Sequence[float]) -> np.ndarray:
    """Candidate positions a majority of the reviewers marked relevant."""
    return np.flatnonzero(np.asarray(human, dtype=np.float64) >= 0.5).astype(np.int64)


@dataclass
class SourceAgreement:
    """Precision and recall of one source's top frames (micro-averaged over reviewed rows)."""

    source: str
    precision: float | None
    recall: float | None
    hits: int
    top: int
    marked: int


@dataclass
class Disagreement:
    """One reviewed row where the fused top frames and the reviewers differ most."""

    sample_id: str
    question: str
    f1: float
    verdict: str
    comment: str
    human_frames: list[int]
    top_frames: list[int]


@dataclass
class AgreementReport:
    """The agreement of pseudo-labels with human review (see the module docstring).

    Attributes:
        reviewed: reviewed rows counted.
        verdicts: ``{verdict: count}`` (``accept``, ``reject``, ``none``).
        accept_rate: accepted / rows with a verdict (None when no row has one).
        k: top frames per source.
        sources: one `SourceAgreement` per source.
        worst: the rows of lowest fused F1, worst first.
    """

    reviewed: int
    verdicts: dict[str, int]
    accept_rate: float | None
    k: int
    sources: list[SourceAgreement] = field(default_factory=list)
    worst: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        """The report as the markdown section of a dataset card."""
        lines = [
            f"{self.reviewed} rows were reviewed in Label Studio. Accept rate of the "
            f"pseudo-labels: **{_pct(self.accept_rate)}** "
            f"({', '.join(f'{v} {n}' for v, n in sorted(self.verdicts.items())) or 'no verdicts'}).",
            "",
            f"Top-{self.k} frames of each source against the frames the reviewers marked "
            "(micro-averaged over reviewed rows):",
            "",
            "| source | precision | recall | hits | top frames | marked frames |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s.source} | {_pct(s.precision)} | {_pct(s.recall)} | {s.hits} | {s.top} | {s.marked} |"
            for s in self.sources
        ]
        lines.append("")
        lines.append("![agreement](assets/review_agreement.png)")
        if self.worst:
            lines += [
                "",
                "Worst disagreements (fused top frames vs reviewer, lowest F1 first):",
                "",
                "| sample | question | F1 | verdict | reviewer frames | top frames | comment |",
                "|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| `{d.sample_id}` | {_cell(d.question)} | {d.f1:.2f} | {d.verdict} | "
                f"{_frames(d.human_frames)} | {_frames(d.top_frames)} | {_cell(d.comment)} |"
                for d in self.worst
            ]
        return "\n".join(lines) + "\n"

    def rich_tables(self) -> list[Any]:
        """Terminal tables (rich): the per-source agreement and the worst disagreements."""
        from rich import box
        from rich.table import Table

        summary = Table(
            box=box.SIMPLE_HEAD,
            title=f"Review agreement · {self.reviewed} reviewed rows · accept rate "
            f"{_pct(self.accept_rate)} · top-{self.k} frames",
        )
        for column in ("source", "precision", "recall", "hits", "top", "marked"):
            summary.add_column(column, justify="left" if column == "source" else "right")
        for s in self.sources:
            summary.add_row(
                s.source, _pct(s.precision), _pct(s.recall), str(s.hits), str(s.top), str(s.marked)
            )
        tables = [summary]
        if self.worst:
            worst = Table(box=box.SIMPLE_HEAD, title="Worst disagreements (fused)")
            for column in ("sample", "question", "F1", "verdict", "reviewer", "top", "comment"):
                worst.add_column(column, overflow="fold")
            for d in self.worst:
                worst.add_row(
                    d.sample_id,
                    d.question,
                    f"{d.f1:.2f}",
                    d.verdict,
                    _frames(d.human_frames),
                    _frames(d.top_frames),
                    d.comment,
                )
            tables.append(worst)
        return tables

    def to_png(self) -> bytes:
        """Precision/recall per source and the per-row fused F1 of the worst rows, as a PNG."""

        matplotlib = require("matplotlib", extra="plot", purpose="the review agreement plot")
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(8.0, 2.8), dpi=100)
        names = [s.source for s in self.sources]
        x = np.arange(len(names))
        precision = [s.precision or 0.0 for s in self.sources]
        recall = [s.recall or 0.0 for s in self.sources]
        axes[0].bar(x - 0.2, precision, width=0.4, label="precision", color="#1f77b4")
        axes[0].bar(x + 0.2, recall, width=0.4, label="recall", color="#ff7f0e")
        axes[0].set_xticks(x, names)
        axes[0].set_ylim(0, 1)
        axes[0].set_title(f"top-{self.k} frames vs reviewers ({self.reviewed} rows)", fontsize=9)
        axes[0].legend(fontsize=7, loc="upper right")
        counts = [self.verdicts.get(v, 0) for v in ("accept", "reject", "none")]
        axes[1].bar(
            ["accept", "reject", "no verdict"], counts, color=["#2e7d32", "#c62828", "#9e9e9e"]
        )
        axes[1].set_title(f"verdicts (accept rate {_pct(self.accept_rate)})", fontsize=9)
        for ax in axes:
            ax.tick_params(labelsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _frames(positions: Sequence[int]) -> str:
    return "[" + ", ".join(str(p) for p in positions) + "]"


def _cell(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _review(row: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(row.get(REVIEW) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def agreement_report(rows: Sequence[Mapping[str, Any]], k: int = DEFAULT_TOP_K) -> AgreementReport:
    """Agreement of the pseudo-labels with the human labels of the reviewed rows.

    Args:
        rows: label rows; those with an empty ``human`` column are skipped.
        k: top frames per source (capped at each row's n).

    Returns:
        An `AgreementReport`.
    """
    reviewed = [r for r in rows if len(r.get(HUMAN) or [])]
    verdicts: dict[str, int] = {}
    hits = dict.fromkeys(SOURCES, 0)
    tops = dict.fromkeys(SOURCES, 0)
    marked = dict.fromkeys(SOURCES, 0)
    recall_hits = dict.fromkeys(SOURCES, 0)
    disagreements: list[Disagreement] = []
    for row in reviewed:
        review = _review(row)
        verdict = str(review.get("verdict") or "none")
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
        truth = set(human_frames(row[HUMAN]).tolist())
        for source, column in SOURCES.items():
            top = set(top_frames(row[column], k).tolist())
            hit = len(top & truth)
            hits[source] += hit
            tops[source] += len(top)
            if truth:
                recall_hits[source] += hit
                marked[source] += len(truth)
        fused = top_frames(row[SCORES], k)
        hit = len(set(fused.tolist()) & truth)
        denominator = len(fused) + len(truth)
        f1 = 2 * hit / denominator if denominator else 1.0
        disagreements.append(
            Disagreement(
                sample_id=str(row[SAMPLE_ID]),
                question=str(row[QUESTION]),
                f1=f1,
                verdict=verdict,
                comment=str(review.get("comment") or ""),
                human_frames=sorted(truth),
                top_frames=fused.tolist(),
            )
        )
    sources = [
        SourceAgreement(
            source=source,
            precision=hits[source] / tops[source] if tops[source] else None,
            recall=recall_hits[source] / marked[source] if marked[source] else None,
            hits=hits[source],
            top=tops[source],
            marked=marked[source],
        )
        for source in SOURCES
    ]
    with_verdict = verdicts.get("accept", 0) + verdicts.get("reject", 0)
    disagreements.sort(key=lambda d: (d.f1, d.sample_id))
    return AgreementReport(
        reviewed=len(reviewed),
        verdicts=verdicts,
        accept_rate=verdicts.get("accept", 0) / with_verdict if with_verdict else None,
        k=k,
        sources=sources,
        worst=[d for d in disagreements if d.f1 < 1.0][:_WORST],
    )
