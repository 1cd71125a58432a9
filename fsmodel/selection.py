"""Choosing k of n candidate frames from per-candidate scores: pure functions, registered by name.

``nms`` is the paper's greedy non-maximum suppression; ``topk`` and ``uniform`` are the baselines
it is measured against; ``inverse_transform`` spreads picks in proportion to the score curve
(BOLT-style inverse transform sampling, Liu et al., CVPR 2025). Every strategy takes a 1-D score
vector and k, and returns k distinct candidate positions in ascending order. Ties break towards
the earlier candidate, so results are deterministic.

This module imports only numpy: it ships beside the model as remote code.

Example:
    >>> import numpy as np
    >>> from fsmodel.selection import select
    >>> select(np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.95]), k=2, strategy="nms")
    array([1, 7])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

# A selection rule (what the public API calls a strategy: ``select(..., strategy="nms")``).
# Evaluation's strategies (`fslabels.evaluation.strategies`) are ``scorer:rule`` pairs.
Rule = Callable[[np.ndarray, int], np.ndarray]
RULES: dict[str, Rule] = {}


def register_rule(name: str) -> Callable[[Rule], Rule]:
    """Decorator: make a selection function available to `select` under ``name``."""

    def wrap(fn: Rule) -> Rule:
        if name in RULES:
            raise ValueError(f"selection strategy {name!r} is already registered")
        RULES[name] = fn
        return fn

    return wrap


def get_rule(name: str) -> Rule:
    """The rule registered as ``name``; an unknown name lists the known ones (worded for the
    public ``strategy=`` keyword)."""
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(
            f"unknown selection strategy {name!r}; known strategies: {sorted(RULES)}"
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


@register_rule("nms")
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


@register_rule("topk")
def topk(scores: np.ndarray, k: int) -> np.ndarray:
    """The k highest-scoring candidates (no suppression), ascending."""
    scores = _check(scores, k)
    return np.sort(_ranking(scores)[:k]).astype(np.int64)


@register_rule("uniform")
def uniform(scores: np.ndarray, k: int) -> np.ndarray:
    """k candidates evenly spread over the n (segment midpoints); the scores are ignored."""
    n = _check(scores, k).size
    i = np.arange(k, dtype=np.int64)
    return ((2 * i + 1) * n) // (2 * k)


DEFAULT_ALPHA = 1.0


def inverse_transform(scores: np.ndarray, k: int, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Inverse transform sampling over the score curve (BOLT, Liu et al., CVPR 2025), made
    deterministic: the scores, min-max normalised to [0, 1] and raised to ``alpha``, are a
    distribution over the candidates; pick ``j`` is the candidate where its cumulative sum first
    exceeds the quantile ``(j + 0.5) / k``. High-scoring stretches get many picks, low ones few,
    and every pick's neighbourhood keeps a share, unlike `topk`.

    Two quantiles can land on the same candidate (a sharp peak); the later one moves to the
    nearest free candidate (ties towards the earlier). A flat curve (all scores equal, or
    ``alpha = 0``) gives exactly `uniform`.

    Args:
        scores: ``[n]`` per-candidate scores (any finite values).
        k: how many to choose, 1 ≤ k ≤ n.
        alpha: sharpness, ≥ 0: larger concentrates the picks on the highest scores.

    Returns:
        ``[k]`` distinct candidate positions, ascending.

    Raises:
        ValueError: on a bad score vector, k or alpha.

    Example:
        >>> inverse_transform(np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0]), k=2).tolist()
        [2, 3]
    """
    scores = _check(scores, k)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    n = scores.size
    low, high = scores.min(), scores.max()
    if high == low or alpha == 0:
        return uniform(scores, k)
    weights = ((scores - low) / (high - low)) ** alpha
    cdf = np.cumsum(weights) / weights.sum()
    quantiles = (np.arange(k) + 0.5) / k
    # side="right": the first candidate whose cumulative mass exceeds the quantile, so a
    # zero-weight candidate (an empty CDF step) is never the target.
    targets = np.minimum(np.searchsorted(cdf, quantiles, side="right"), n - 1)
    taken = np.zeros(n, bool)
    chosen: list[int] = []
    for target in targets.tolist():
        pick = _nearest_free(taken, target)
        taken[pick] = True
        chosen.append(pick)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _nearest_free(taken: np.ndarray, target: int) -> int:
    if not taken[target]:
        return target
    for distance in range(1, taken.size):
        for candidate in (target - distance, target + distance):
            if 0 <= candidate < taken.size and not taken[candidate]:
                return candidate
    raise AssertionError("no free candidate left (k > n is rejected earlier)")


register_rule("inverse_transform")(inverse_transform)


def select(scores: np.ndarray, k: int, strategy: str = "nms") -> np.ndarray:
    """Choose ``k`` candidates from ``scores`` with a registered strategy (``nms``, ``topk``,
    ``uniform``, ``inverse_transform``). Returns ascending candidate positions."""
    return get_rule(strategy)(scores, k)


class Picks(NamedTuple):
    """What `select_distinct` chose: ``positions`` (``[k]`` candidate positions, ascending) and
    ``repeated`` (``[k]`` bool: the pick shows a frame an earlier pick already shows)."""

    positions: np.ndarray
    repeated: np.ndarray

    @property
    def distinct(self) -> int:
        """How many distinct frames the picks show."""
        return int((~self.repeated).sum())


def select_distinct(
    scores: np.ndarray, frame_indices: np.ndarray, k: int, strategy: str = "nms", **options
) -> Picks:
    """Exactly ``k`` picks, of which ``min(k, N)`` show distinct frames, on a video whose ``n``
    candidates show ``N`` distinct frames (a short video repeats frames among its candidates).

    The rule runs over the distinct frames (each scored by the best of its candidates, and
    represented by its first candidate), so a budget of k never spends two picks on one frame
    while another is left. Only when ``N < k`` do picks repeat: every frame once, then the
    highest-scoring remaining candidates, marked in ``repeated``. When every candidate shows its
    own frame this is exactly ``get_rule(strategy)(scores, k)``.

    Args:
        scores: ``[n]`` per-candidate scores.
        frame_indices: ``[n]`` the frame each candidate shows (non-decreasing).
        k: picks, 1 ≤ k ≤ n.
        strategy: a registered rule; ``options`` go to it (e.g. ``alpha``).

    Raises:
        ValueError: a bad score vector or k, or frame indices of another shape.

    Example:
        >>> picks = select_distinct(np.array([0.9, 0.8, 0.1, 0.2]), np.array([0, 0, 1, 2]), k=2)
        >>> picks.positions.tolist(), picks.distinct
        ([0, 3], 2)
    """
    scores = _check(scores, k)
    frames = np.asarray(frame_indices)
    if frames.shape != scores.shape:
        raise ValueError(
            f"frame_indices has shape {frames.shape}, the scores {scores.shape}: one frame index "
            "per candidate"
        )
    rule = get_rule(strategy)
    distinct, first, owner = np.unique(frames, return_index=True, return_inverse=True)
    if distinct.size == frames.size:
        positions = rule(scores, k, **options)
        return Picks(positions, np.zeros(k, bool))
    if k <= distinct.size:
        best = np.full(distinct.size, -np.inf)
        np.maximum.at(best, owner.reshape(-1), scores)
        positions = np.sort(first[rule(best, k, **options)])
        return Picks(positions.astype(np.int64), np.zeros(k, bool))
    taken = set(first.tolist())
    rest = [int(i) for i in _ranking(scores) if int(i) not in taken][: k - distinct.size]
    positions = np.sort(np.asarray([*taken, *rest], dtype=np.int64))
    shown = frames[positions]
    repeated = np.zeros(k, bool)
    repeated[1:] = shown[1:] == shown[:-1]
    return Picks(positions, repeated)


__all__ = [
    "DEFAULT_ALPHA",
    "RULES",
    "Picks",
    "get_rule",
    "greedy_nms",
    "inverse_transform",
    "register_rule",
    "select",
    "select_distinct",
    "suppression_radius",
    "topk",
    "uniform",
]
