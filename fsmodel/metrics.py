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


__all__ = ["DEFAULT_THRESHOLD", "precision_at_k", "recall_at_k", "relevant_positions"]
