"""Fusing spatial and temporal labels into one score per frame, and run statistics.

The paper's label is the mean of the two sources. A source that failed is never averaged in as
zeros: where one source has no value (a failed sample, or a failed frame), the other is used
alone and the metadata says so, so a dataset card can count how many labels are single-source.

Example:
    >>> fused = fuse([0.2, 0.9, float("nan")], [0.0, 1.0, 1.0])
    >>> fused.scores.tolist(), fused.metadata["sources"]
    ([0.1, 0.95, 1.0], ['spatial', 'temporal'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fsmodel.schema import LABEL_META, SCORES, SPATIAL, TEMPORAL

__all__ = ["FusedScores", "fuse", "run_statistics"]

SPATIAL_SOURCE, TEMPORAL_SOURCE = "spatial", "temporal"


@dataclass
class FusedScores:
    """The fused label of one sample.

    Attributes:
        scores: ``[n]`` float64 in [0, 1]; NaN only for frames neither source labelled.
        metadata: JSON-able: ``sources`` (the sources used anywhere), ``weights``,
            ``spatial_only`` / ``temporal_only`` / ``unlabelled`` (frame positions labelled by
            one source or none), ``note`` (a sentence for humans; empty when both sources
            labelled every frame).
    """

    scores: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every frame has a fused score."""
        return not np.isnan(self.scores).any()


def _as_scores(source: Any, name: str) -> np.ndarray | None:
    if source is None:
        return None
    values = getattr(source, "scores", source)  # a SpatialResult / TemporalResult, or an array
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} scores must be 1-D, got shape {array.shape}")
    finite = array[np.isfinite(array)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(
            f"{name} scores must lie in [0, 1] (NaN for missing), got {finite.min()}..{finite.max()}"
        )
    return array


def fuse(spatial: Any, temporal: Any, weights: tuple[float, float] = (0.5, 0.5)) -> FusedScores:
    """Weighted mean of the spatial and temporal scores, frame by frame.

    Args:
        spatial: ``[n]`` scores with NaN for failed frames, a `SpatialResult`, or ``None`` when
            the source failed or did not run for this sample.
        temporal: likewise (a `TemporalResult`'s scores are all NaN when it failed).
        weights: ``(spatial, temporal)``, non-negative, not both zero; normalised where both
            sources have a value. A zero weight leaves that source out.

    Returns:
        `FusedScores`.

    Raises:
        ValueError: bad weights, scores outside [0, 1], both sources missing, or lengths that
            differ.
    """
    w_spatial, w_temporal = (float(w) for w in weights)
    if w_spatial < 0 or w_temporal < 0 or w_spatial + w_temporal == 0:
        raise ValueError(f"weights must be non-negative and not both zero, got {weights}")
    s = _as_scores(spatial, SPATIAL_SOURCE) if w_spatial > 0 else None
    t = _as_scores(temporal, TEMPORAL_SOURCE) if w_temporal > 0 else None
    if s is None and t is None:
        raise ValueError("fuse needs at least one source with a non-zero weight")
    if s is not None and t is not None and s.shape != t.shape:
        raise ValueError(f"spatial has {s.size} scores but temporal has {t.size}")
    n = (s if s is not None else t).size  # type: ignore[union-attr]
    s = s if s is not None else np.full(n, np.nan)
    t = t if t is not None else np.full(n, np.nan)
    has_s, has_t = np.isfinite(s), np.isfinite(t)
    both = has_s & has_t
    scores = np.full(n, np.nan)
    scores[both] = (w_spatial * s[both] + w_temporal * t[both]) / (w_spatial + w_temporal)
    scores[has_s & ~has_t] = s[has_s & ~has_t]
    scores[has_t & ~has_s] = t[has_t & ~has_s]
    spatial_only = np.flatnonzero(has_s & ~has_t).tolist()
    temporal_only = np.flatnonzero(has_t & ~has_s).tolist()
    unlabelled = np.flatnonzero(~has_s & ~has_t).tolist()
    sources = [
        name for name, has in ((SPATIAL_SOURCE, has_s), (TEMPORAL_SOURCE, has_t)) if has.any()
    ]
    return FusedScores(
        scores=scores,
        metadata={
            "sources": sources,
            "weights": {SPATIAL_SOURCE: w_spatial, TEMPORAL_SOURCE: w_temporal},
            "spatial_only": spatial_only,
            "temporal_only": temporal_only,
            "unlabelled": unlabelled,
            "note": _note(
                n, sources, spatial_only, temporal_only, unlabelled, w_spatial, w_temporal
            ),
        },
    )


def _note(
    n: int,
    sources: list[str],
    spatial_only: list[int],
    temporal_only: list[int],
    unlabelled: list[int],
    w_spatial: float,
    w_temporal: float,
) -> str:
    parts = []
    for name, weight in ((SPATIAL_SOURCE, w_spatial), (TEMPORAL_SOURCE, w_temporal)):
        if weight == 0:
            parts.append(f"{name} has weight 0 and is not used")
        elif name not in sources:
            parts.append(f"{name} failed for this sample: the other source is used alone")
    if len(sources) == 2:
        if spatial_only:
            parts.append(f"{len(spatial_only)} of {n} frames have only the spatial score")
        if temporal_only:
            parts.append(f"{len(temporal_only)} of {n} frames have only the temporal score")
    if unlabelled:
        parts.append(f"{len(unlabelled)} of {n} frames have no score from either source")
    return "; ".join(parts)


def run_statistics(
    rows: Iterable[Mapping[str, Any]],
    bins: int = 10,
    columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Statistics of a label run for its card: histograms, agreement, fraction above 0.5.

    Args:
        rows: label rows (schema v1 ``spatial``, ``temporal``, ``scores`` columns; NaN values
            and the placeholders of a failed source (``label_meta["filled"]``) are ignored).
        bins: histogram bins over [0, 1].
        columns: the score columns (default: spatial, temporal, scores).

    Returns:
        ``{"samples", "histograms": {column: {"edges", "counts"}}, "fraction_above_0.5":
        {column: float | None}, "agreement": {"pearson", "spearman", "samples", "undefined"}}``.
        Agreement is the per-sample correlation between spatial and temporal over frames both
        labelled, averaged over samples where it is defined (a constant column, e.g. a temporal
        label choosing no frame, has none; those are counted in ``undefined``).
    """

    columns = tuple(columns or (SPATIAL, TEMPORAL, SCORES))
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = {c: np.zeros(bins, dtype=np.int64) for c in columns}
    above = dict.fromkeys(columns, 0)
    total = dict.fromkeys(columns, 0)
    pearson: list[float] = []
    spearman: list[float] = []
    undefined = samples = 0
    for row in rows:
        samples += 1
        row = _unfilled(row)
        for column in columns:
            values = _finite(row.get(column))
            counts[column] += np.histogram(values, bins=edges)[0]
            above[column] += int((values > 0.5).sum())
            total[column] += values.size
        if SPATIAL in row and TEMPORAL in row:
            s = np.asarray(row[SPATIAL], dtype=np.float64)
            t = np.asarray(row[TEMPORAL], dtype=np.float64)
            keep = np.isfinite(s) & np.isfinite(t)
            r_p = _pearson(s[keep], t[keep])
            if r_p is None:
                undefined += 1
            else:
                pearson.append(r_p)
                spearman.append(_pearson(_ranks(s[keep]), _ranks(t[keep])) or 0.0)
    return {
        "samples": samples,
        "histograms": {c: {"edges": edges.tolist(), "counts": counts[c].tolist()} for c in columns},
        "fraction_above_0.5": {c: (above[c] / total[c] if total[c] else None) for c in columns},
        "agreement": {
            "pearson": float(np.mean(pearson)) if pearson else None,
            "spearman": float(np.mean(spearman)) if spearman else None,
            "samples": len(pearson),
            "undefined": undefined,
        },
    }


def _unfilled(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The row with the values a failed source was filled with (``label_meta["filled"]``)
    turned back into NaN: they are placeholders, not labels, and must not enter statistics."""
    import json

    try:
        filled = json.loads(row.get(LABEL_META) or "{}").get("filled", {})
    except (TypeError, ValueError):
        return row
    if not filled:
        return row
    row = dict(row)
    for column, spec in filled.items():
        if column in row:
            values = np.asarray(row[column], dtype=np.float64).copy()
            values[np.asarray(spec.get("positions", []), dtype=np.int64)] = np.nan
            row[column] = values
    return row


def _finite(values: Any) -> np.ndarray:
    if values is None:
        return np.zeros(0)
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    if denominator == 0.0:
        return None
    return float((dx * dy).sum() / denominator)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their average rank (as Spearman's rho needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(values.size, dtype=np.float64)
    _, inverse, tie_counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / tie_counts[inverse]
