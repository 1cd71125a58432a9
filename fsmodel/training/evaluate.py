"""How well a selector's picks cover the frames its labels mark as relevant.

For every sample, the selector's scores go through each selection strategy (``nms``, the paper's;
``topk`` and ``uniform``, the baselines) and the k picks are compared with the label's relevant
candidates (`fsmodel.metrics.relevant_positions`):

- recall@k (`fsmodel.metrics.recall_at_k`): share of the relevant candidates covered, out of
  what k picks could cover;
- coverage@k: share of the relevant *occurrences* (runs of adjacent relevant candidates) that
  get at least one pick. It is what spreading picks out is for: a question about an event that
  happens twice needs a frame of each time, not eight frames of one.

Used by the training recipe's logs, ``framesel model eval`` and the quality benchmark.

Example:
    >>> report = evaluate_selector(model, samples, FrameSource(model, processor), k=8)
    >>> report.mean("recall", "nms"), report.mean("recall", "uniform")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fsmodel.metrics import DEFAULT_THRESHOLD, recall_at_k, relevant_positions
from fsmodel.selection import select

if TYPE_CHECKING:
    from fsmodel.modeling_frame_selector import FrameSelectorModel
    from fsmodel.training.data import FrameSource, LabelSample

__all__ = [
    "EVAL_RULES",
    "EvalReport",
    "SampleResult",
    "coverage_at_k",
    "evaluate_selector",
    "occurrences",
    "plot_examples",
    "score_samples",
]

EVAL_RULES = ("nms", "topk", "uniform")
METRICS = ("recall", "coverage")


def occurrences(relevant: np.ndarray) -> list[np.ndarray]:
    """Split ascending relevant positions into runs of adjacent candidates.

    Example:
        >>> [r.tolist() for r in occurrences(np.array([2, 3, 4, 9, 12, 13]))]
        [[2, 3, 4], [9], [12, 13]]
    """
    relevant = np.asarray(relevant, np.int64)
    if relevant.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(relevant) > 1) + 1
    return np.split(relevant, breaks)


def coverage_at_k(chosen: np.ndarray, relevant: np.ndarray) -> float:
    """Share of the relevant occurrences (see `occurrences`) with at least one chosen candidate;
    NaN when nothing is relevant."""
    runs = occurrences(np.unique(relevant))
    if not runs:
        return float("nan")
    chosen = np.asarray(chosen, np.int64)
    return float(np.mean([bool(np.isin(run, chosen).any()) for run in runs]))


@dataclass
class SampleResult:
    """One sample's scores, relevant candidates, and each strategy's picks and metrics."""

    sample_id: str
    scores: np.ndarray
    labels: np.ndarray
    relevant: np.ndarray
    picks: dict[str, np.ndarray]
    recall: dict[str, float]
    coverage: dict[str, float]


@dataclass
class EvalReport:
    """Per-sample results and their means.

    Attributes:
        k: picks per sample.
        results: one `SampleResult` per sample.
        loss: mean BCE of the scores against the labels (None when not computed).
    """

    k: int
    results: list[SampleResult] = field(default_factory=list)
    loss: float | None = None

    def mean(self, metric: str, strategy: str) -> float:
        """Mean of ``metric`` (``recall`` or ``coverage``) for ``strategy`` over the samples
        with relevant candidates (NaN if none has any)."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        values = [getattr(r, metric)[strategy] for r in self.results]
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-ready means: ``{"recall@8": {"nms": ..}, "coverage@8": {..}, "samples": N}``."""
        out: dict[str, Any] = {
            f"{metric}@{self.k}": {s: _round(self.mean(metric, s)) for s in EVAL_RULES}
            for metric in METRICS
        }
        out["samples"] = len(self.results)
        if self.loss is not None:
            out["loss"] = _round(self.loss)
        return out


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def score_samples(
    sample_ids: Sequence[str],
    scores: np.ndarray,
    labels: np.ndarray,
    k: int,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[SampleResult]:
    """Pick k candidates per row of ``scores`` with every strategy and measure them against
    the rows of ``labels`` (pure: no model)."""
    results = []
    for sample_id, row, label in zip(sample_ids, scores, labels, strict=True):
        relevant = relevant_positions(label, threshold)
        picks = {s: select(row, k, s) for s in EVAL_RULES}
        results.append(
            SampleResult(
                sample_id=sample_id,
                scores=np.asarray(row, np.float32),
                labels=np.asarray(label, np.float32),
                relevant=relevant,
                picks=picks,
                recall={s: recall_at_k(p, relevant) for s, p in picks.items()},
                coverage={s: coverage_at_k(p, relevant) for s, p in picks.items()},
            )
        )
    return results


def evaluate_selector(
    model: FrameSelectorModel,
    samples: Sequence[LabelSample],
    frames: FrameSource,
    k: int = 8,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 8,
    use_features: bool = True,
) -> EvalReport:
    """Score every sample with ``model`` and measure each strategy's k picks.

    Args:
        model: the selector (a `FrameSelectorModel`, or a peft model around one).
        samples: label samples.
        frames: where their frames come from (`FrameSource`).
        k: picks per sample (at most n).
        threshold: label score at which a candidate counts as relevant.
        batch_size: rows per forward pass.
        use_features: feed the frozen tower's (cached) features instead of pixels (same
            scores; much faster once cached).

    Returns:
        An `EvalReport` with the BCE loss.

    Raises:
        ValueError: k larger than the samples' n.
        TrainingDataError: a sample whose frames cannot be decoded as labelled.
    """
    import torch

    from fsmodel.training.data import collate_bce

    if not samples:
        return EvalReport(k=k)
    n = samples[0].num_candidates
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of candidates ({n}), got {k}")
    was_training = model.training
    model.eval()
    results: list[SampleResult] = []
    losses = []
    device = next(model.parameters()).device
    try:
        for start in range(0, len(samples), batch_size):
            chunk = list(samples[start : start + batch_size])
            batch = collate_bce(chunk, frames, use_features)
            inputs = {k_: v.to(device) for k_, v in batch.inputs().items() if v is not None}
            with torch.no_grad():
                out = model(**inputs)
            losses.append(float(out.loss) * len(chunk))
            results += score_samples(
                [s.sample_id for s in chunk],
                out.scores.float().cpu().numpy(),
                batch.labels.numpy(),
                k,
                threshold,
            )
    finally:
        model.train(was_training)
    return EvalReport(k=k, results=results, loss=sum(losses) / len(samples))


def plot_examples(
    report: EvalReport,
    samples: Sequence[LabelSample],
    path: str | Path,
    count: int = 4,
    frames: FrameSource | None = None,
    title: str | None = None,
) -> Path:
    """Draw a few samples: label and selector score per candidate, and where each strategy's k
    picks land (with the nms picks' thumbnails when ``frames`` is given).

    Raises:
        ImportError: without matplotlib (``pip install 'framesel[plot]'``).
    """
    from fsmodel._imports import require

    require("matplotlib", extra="plot", purpose="the evaluation plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from fsmodel.training.data import decode_candidates

    by_id = {s.sample_id: s for s in samples}
    shown = [r for r in report.results if r.relevant.size][:count] or report.results[:count]
    rows = len(shown)
    thumbs = frames is not None
    fig = plt.figure(figsize=(11, 2.6 * rows * (1.45 if thumbs else 1.0)), dpi=100)
    grid = fig.add_gridspec(
        rows * (2 if thumbs else 1), report.k, hspace=0.6, top=0.94, bottom=0.04
    )
    markers = {"nms": ("#ff9f1c", 1.08), "topk": ("#2a9d8f", 1.16), "uniform": ("#8d99ae", 1.24)}
    for i, result in enumerate(shown):
        sample = by_id[result.sample_id]
        ax = fig.add_subplot(grid[i * (2 if thumbs else 1), :])
        x = np.arange(len(result.scores))
        ax.bar(x, result.labels, color="#cfe3c9", width=1.0, label="label")
        ax.plot(x, result.scores, color="#4a6fa5", lw=1.4, label="selector score")
        for strategy, (color, y) in markers.items():
            picks = result.picks[strategy]
            ax.scatter(picks, np.full(len(picks), y), color=color, s=18,
                       label=f"{strategy} (recall {result.recall[strategy]:.2f})")  # fmt: skip
        ax.set_ylim(0, 1.3)
        ax.set_xlim(-0.5, len(x) - 0.5)
        ax.set_yticks([0, 0.5, 1])
        ax.set_title(f"{sample.question}  [{sample.video_id}]", fontsize=9)
        ax.legend(loc="upper left", fontsize=6, ncol=5, frameon=False, bbox_to_anchor=(0, -0.18))
        if thumbs:
            images = decode_candidates(sample, size=96, reader=frames.reader)
            for j, p in enumerate(result.picks["nms"]):
                thumb = fig.add_subplot(grid[i * 2 + 1, j])
                thumb.imshow(images[p])
                hit = int(p) in set(result.relevant.tolist())
                thumb.set_title(f"#{int(p)}" + (" ✓" if hit else ""), fontsize=7)
                thumb.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
