"""How well k chosen candidates cover the frames a label (or a human) marks as relevant.

Pure numpy, shared by training logs, ``framesel model eval`` and the review agreement report.

Example:
    >>> import numpy as np
    >>> labels = np.array([0.0, 0.1, 0.9, 0.8, 0.0, 0.7, 0.0, 0.0])
    >>> relevant_positions(labels)
    array([2, 3, 5])
    >>> recall_at_k(np.array([2, 5]), relevant_positions(labels))
    1.0
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5


def relevant_positions(
    labels: np.ndarray, threshold: float = DEFAULT_THRESHOLD, top: int | None = None
) -> np.ndarray:
    """Candidate positions a label marks as relevant: scores ≥ ``threshold``; when none reach
    it and ``top`` is given, the ``top`` highest (ties to the earlier candidate).

    Args:
        labels: ``[n]`` per-candidate label scores in [0, 1].
        threshold: the score at which a candidate counts as relevant.
        top: fallback count when no candidate reaches the threshold (``None``: none).

    Returns:
        Ascending int64 positions.
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D vector, got shape {labels.shape}")
    hits = np.flatnonzero(labels >= threshold)
    if hits.size == 0 and top:
        hits = np.sort(np.argsort(-labels, kind="stable")[:top])
    return hits.astype(np.int64)


def recall_at_k(chosen: np.ndarray, relevant: np.ndarray) -> float:
    """Share of the relevant candidates that the k chosen ones cover, out of what k picks could
    cover at best: ``|chosen ∩ relevant| / min(k, |relevant|)``.

    Returns NaN when nothing is relevant (the sample says nothing about recall).
    """
    chosen = np.unique(np.asarray(chosen, dtype=np.int64))
    relevant = np.unique(np.asarray(relevant, dtype=np.int64))
    if relevant.size == 0:
        return float("nan")
    if chosen.size == 0:
        raise ValueError("chosen must hold at least one candidate position")
    best = min(chosen.size, relevant.size)
    return float(np.intersect1d(chosen, relevant).size / best)


def precision_at_k(chosen: np.ndarray, relevant: np.ndarray) -> float:
    """Share of the chosen candidates that are relevant (NaN when nothing is relevant)."""
    chosen = np.unique(np.asarray(chosen, dtype=np.int64))
    relevant = np.unique(np.asarray(relevant, dtype=np.int64))
    if relevant.size == 0:
        return float("nan")
    if chosen.size == 0:
        raise ValueError("chosen must hold at least one candidate position")
    return float(np.intersect1d(chosen, relevant).size / chosen.size)


def coverage_at_k(chosen: np.ndarray, groups: np.ndarray) -> float:
    """Share of the relevant occurrences (spans) that get at least one of the chosen candidates.

    Args:
        chosen: chosen candidate positions.
        groups: ``[n]``, the occurrence each candidate belongs to (-1: none).

    Returns NaN when there is no occurrence.
    """
    groups = np.asarray(groups, dtype=np.int64)
    spans = np.unique(groups[groups >= 0])
    if spans.size == 0:
        return float("nan")
    hit = np.unique(groups[np.asarray(chosen, dtype=np.int64)])
    return float(np.intersect1d(hit, spans).size / spans.size)


def roc_auc(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``relevant``: the probability that
    a relevant candidate scores above an irrelevant one, ties counting half (Mann-Whitney).

    Returns NaN when every candidate is relevant or none is.
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    positives, negatives = int(relevant.sum()), int((~relevant).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(scores.size, np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < scores.size:  # average ranks over ties
        end = start
        while end + 1 < scores.size and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float(
        (ranks[relevant].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def expected_top_k(scores: np.ndarray, k: int, groups: np.ndarray) -> dict[str, float]:
    """recall@k, precision@k and coverage@k of the ``k`` highest ``scores``, in expectation over
    a uniformly random order among tied scores (0/1 labels tie a lot: the value is what a seeded
    shuffle gives on average, computed exactly).

    Args:
        scores: ``[n]`` scores.
        k: how many candidates are picked (``1 <= k <= n``).
        groups: ``[n]``, the occurrence each candidate belongs to (-1: not relevant).

    Returns:
        ``{"recall", "precision", "coverage"}`` (NaN when nothing is relevant).
    """
    from math import comb

    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if not 1 <= k <= scores.size:
        raise ValueError(f"k must be in 1..{scores.size}, got {k}")
    relevant = groups >= 0
    total = int(relevant.sum())
    if total == 0:
        nan = float("nan")
        return {"recall": nan, "precision": nan, "coverage": nan}
    levels = np.unique(scores)[::-1]
    sure = np.zeros(scores.size, bool)
    for level in levels:  # take whole score levels while they fit
        tied = scores == level
        if sure.sum() + tied.sum() > k:
            boundary, remaining = tied, k - int(sure.sum())
            break
        sure |= tied
    else:
        boundary, remaining = np.zeros(scores.size, bool), 0
    size = int(boundary.sum())
    hits = float((sure & relevant).sum())
    if size:
        hits += remaining * float((boundary & relevant).sum()) / size
    covered = 0.0
    for span in np.unique(groups[relevant]):
        members = groups == span
        if (members & sure).any():
            covered += 1.0
        elif size and remaining:
            inside = int((members & boundary).sum())
            covered += 1.0 - comb(size - inside, remaining) / comb(size, remaining)
    return {
        "recall": hits / min(k, total),
        "precision": hits / k,
        "coverage": covered / len(np.unique(groups[relevant])),
    }


def candidates_in_spans(
    spans: list[tuple[float, float]] | tuple[tuple[float, float], ...], timestamps: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    """Which candidates fall inside the truth spans.

    Args:
        spans: half-open ``[start, end)`` spans in seconds.
        timestamps: ``[n]`` candidate presentation times in seconds.

    Returns:
        ``(groups, flagged)``: ``groups[i]`` is the index of the span candidate i falls in, -1
        outside every span; a span with no candidate inside is mapped to the nearest candidate
        (ties to the earlier one) and its index is listed in ``flagged``.
    """
    times = np.asarray(timestamps, np.float64)
    groups = np.full(times.shape, -1, np.int64)
    flagged = []
    for j, (start, end) in enumerate(spans):
        inside = (times >= start) & (times < end)
        if not inside.any():
            middle = (start + end) / 2
            inside = np.zeros_like(inside)
            inside[int(np.argmin(np.abs(times - middle)))] = True
            flagged.append(j)
        groups[inside & (groups < 0)] = j
    return groups, flagged


__all__ = [
    "DEFAULT_THRESHOLD",
    "candidates_in_spans",
    "coverage_at_k",
    "expected_top_k",
    "precision_at_k",
    "recall_at_k",
    "relevant_positions",
    "roc_auc",
]
