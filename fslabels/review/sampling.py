"""Which rows a reviewer sees: sampling strategies registered by name.

A strategy ranks rows by a per-row priority (higher first); `sample_rows` takes the top N, with
ties (and the whole order, for ``random``) broken by a seeded generator, so a seed reproduces the
sample exactly.

- ``random``: uniform over the rows.
- ``uncertain``: where the fused label is least sure — the mean binary entropy of ``scores``.
- ``disagree``: where the two sources disagree most — the mean ``|spatial - temporal|``.

Example:
    >>> picked = sample_rows(rows, 20, strategy="disagree", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fsmodel.schema import HUMAN, SCORES, SPATIAL, TEMPORAL

__all__ = ["SAMPLING_STRATEGIES", "register_sampling", "sample_rows"]

Priority = Callable[[Mapping[str, Any]], float]
SAMPLING_STRATEGIES: dict[str, Priority] = {}


def register_sampling(name: str) -> Callable[[Priority], Priority]:
    """Decorator: a per-row priority function becomes the sampling strategy ``name``."""

    def wrap(fn: Priority) -> Priority:
        if name in SAMPLING_STRATEGIES:
            raise ValueError(f"sampling strategy {name!r} is already registered")
        SAMPLING_STRATEGIES[name] = fn
        return fn

    return wrap


@register_sampling("random")
def _random(row: Mapping[str, Any]) -> float:
    return 0.0  # every row ties; the seeded shuffle decides


@register_sampling("uncertain")
def _uncertain(row: Mapping[str, Any]) -> float:
    p = np.clip(np.asarray(row[SCORES], dtype=np.float64), 1e-9, 1 - 1e-9)
    return float(np.mean(-(p * np.log2(p) + (1 - p) * np.log2(1 - p))))


@register_sampling("disagree")
def _disagree(row: Mapping[str, Any]) -> float:
    spatial = np.asarray(row[SPATIAL], dtype=np.float64)
    temporal = np.asarray(row[TEMPORAL], dtype=np.float64)
    return float(np.mean(np.abs(spatial - temporal)))


def sample_rows(
    rows: Sequence[Mapping[str, Any]],
    n: int | None,
    strategy: str = "random",
    seed: int = 0,
    include_reviewed: bool = False,
) -> list[int]:
    """Positions of the rows to review, highest priority first.

    Args:
        rows: label rows (schema v1).
        n: how many to pick (None or more than there are: all eligible rows).
        strategy: ``random``, ``uncertain`` or ``disagree`` (see `SAMPLING_STRATEGIES`).
        seed: seeds the tie-breaking shuffle.
        include_reviewed: also pick rows that already carry human labels.

    Returns:
        Row positions, at most ``n``.

    Raises:
        ValueError: an unknown strategy (listing the known ones) or a negative ``n``.
    """
    if strategy not in SAMPLING_STRATEGIES:
        raise ValueError(
            f"unknown sampling strategy {strategy!r}; known strategies: {sorted(SAMPLING_STRATEGIES)}"
        )
    if n is not None and n < 0:
        raise ValueError(f"--sample must be >= 0, got {n}")
    priority = SAMPLING_STRATEGIES[strategy]
    eligible = [
        i for i, row in enumerate(rows) if include_reviewed or not len(row.get(HUMAN) or [])
    ]
    rng = np.random.default_rng(seed)
    shuffled = [eligible[j] for j in rng.permutation(len(eligible))]
    # Stable sort on the shuffled order: equal priorities keep the seeded order.
    ranked = sorted(shuffled, key=lambda i: -priority(rows[i]))
    return ranked if n is None else ranked[:n]
