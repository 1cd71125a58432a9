"""Choosing k of n candidate frames from per-candidate scores: pure functions, registered by name.

``nms`` is the paper's greedy non-maximum suppression; ``topk`` and ``uniform`` are the baselines
it is measured against. Every strategy takes a 1-D score vector and k, and returns k distinct
candidate positions in ascending order. Ties break towards the earlier candidate, so results are
deterministic.

This module imports only numpy: it ships beside the model as remote code.

Example:
    >>> import numpy as np
    >>> from fsmodel.selection import select
    >>> select(np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.95]), k=2, strategy="nms")
    array([1, 7])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Strategy = Callable[[np.ndarray, int], np.ndarray]
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Decorator: make a selection function available to `select` under ``name``."""

    def wrap(fn: Strategy) -> Strategy:
        if name in STRATEGIES:
            raise ValueError(f"selection strategy {name!r} is already registered")
        STRATEGIES[name] = fn
        return fn

    return wrap


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; an unknown name lists the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown selection strategy {name!r}; known strategies: {sorted(STRATEGIES)}"
        ) from None


def _check(scores: np.ndarray, k: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D vector, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        bad = np.flatnonzero(~np.isfinite(scores))
        raise ValueError(f"scores must be finite; positions {bad[:5].tolist()} are not")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= scores.size:
        raise ValueError(
            f"k must be between 1 and the number of candidates ({scores.size}), got {k}"
        )
    return scores


def _ranking(scores: np.ndarray) -> np.ndarray:
    # Descending by score; a stable sort of the negated scores keeps earlier candidates first.
    return np.argsort(-scores, kind="stable")


def suppression_radius(n: int, k: int) -> int:
    """δ = floor(n / (4k)): candidates within δ of a pick are suppressed."""
    return n // (4 * k)


@register_strategy("nms")
def greedy_nms(scores: np.ndarray, k: int) -> np.ndarray:
    """Greedy NMS (Hu et al., 2025): take the best remaining candidate, suppress every candidate
    within δ = floor(n / (4k)) of it, repeat until k are chosen; if suppression leaves fewer than
    k, fill with the best unselected candidates.

    Args:
        scores: ``[n]`` per-candidate scores.
        k: how many to choose, 1 ≤ k ≤ n.

    Returns:
        ``[k]`` distinct candidate positions, ascending.

    Raises:
        ValueError: on a bad score vector or k.
    """
    scores = _check(scores, k)
    n = scores.size
    delta = suppression_radius(n, k)
    order = _ranking(scores)
    available = np.ones(n, bool)
    chosen: list[int] = []
    for i in order:
        if len(chosen) == k:
            break
        if available[i]:
            chosen.append(int(i))
            available[max(0, i - delta) : i + delta + 1] = False
    if len(chosen) < k:
        taken = set(chosen)
        chosen += [int(i) for i in order if i not in taken][: k - len(chosen)]
    return np.sort(np.asarray(chosen, dtype=np.int64))


@register_strategy("topk")
def topk(scores: np.ndarray, k: int) -> np.ndarray:
    """The k highest-scoring candidates (no suppression), ascending."""
    scores = _check(scores, k)
    return np.sort(_ranking(scores)[:k]).astype(np.int64)


@register_strategy("uniform")
def uniform(scores: np.ndarray, k: int) -> np.ndarray:
    """k candidates evenly spread over the n (segment midpoints); the scores are ignored."""
    n = _check(scores, k).size
    i = np.arange(k, dtype=np.int64)
    return ((2 * i + 1) * n) // (2 * k)


def select(scores: np.ndarray, k: int, strategy: str = "nms") -> np.ndarray:
    """Choose ``k`` candidates from ``scores`` with a registered strategy (``nms``, ``topk``,
    ``uniform``). Returns ascending candidate positions."""
    return get_strategy(strategy)(scores, k)


__all__ = [
    "STRATEGIES",
    "get_strategy",
    "greedy_nms",
    "register_strategy",
    "select",
    "suppression_radius",
    "topk",
    "uniform",
]
