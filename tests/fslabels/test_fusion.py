"""Fusion of spatial and temporal labels (never averaging with zeros) and run statistics."""

from __future__ import annotations

import numpy as np
import pytest

from fslabels.fusion import fuse, run_statistics
from fslabels.spatial import SpatialResult

NAN = float("nan")


@pytest.mark.parametrize(
    ("spatial", "temporal", "weights", "scores", "sources", "note"),
    [
        ([0.2, 0.8], [0.0, 1.0], (0.5, 0.5), [0.1, 0.9], ["spatial", "temporal"], ""),
        ([0.2, 0.8], [0.0, 1.0], (1, 3), [0.05, 0.95], ["spatial", "temporal"], ""),
        (None, [0.0, 1.0], (0.5, 0.5), [0.0, 1.0], ["temporal"], "spatial failed for this sample"),
        (
            [0.2, 0.8],
            [NAN, NAN],
            (0.5, 0.5),
            [0.2, 0.8],
            ["spatial"],
            "temporal failed for this sample",
        ),
        (
            [NAN, 0.8],
            [0.0, 1.0],
            (0.5, 0.5),
            [0.0, 0.9],
            ["spatial", "temporal"],
            "1 of 2 frames have only the temporal score",
        ),
        (
            [NAN, 0.8],
            [NAN, 1.0],
            (0.5, 0.5),
            [NAN, 0.9],
            ["spatial", "temporal"],
            "1 of 2 frames have no score from either source",
        ),
        (
            [0.2, 0.8],
            [0.0, 1.0],
            (1, 0),
            [0.2, 0.8],
            ["spatial"],
            "temporal has weight 0 and is not used",
        ),
        ([NAN, NAN], [NAN, NAN], (0.5, 0.5), [NAN, NAN], [], "spatial failed for this sample"),
    ],
)
def test_fuse(spatial, temporal, weights, scores, sources, note):
    fused = fuse(spatial, temporal, weights)
    np.testing.assert_allclose(fused.scores, scores)
    assert fused.metadata["sources"] == sources
    assert note in fused.metadata["note"]
    if note == "":
        assert fused.metadata["note"] == "" and fused.complete


def test_fuse_metadata_names_single_source_frames():
    fused = fuse([NAN, 0.5, 0.7, NAN], [1.0, NAN, 0.0, NAN])
    meta = fused.metadata
    assert (
        meta["spatial_only"] == [1] and meta["temporal_only"] == [0] and meta["unlabelled"] == [3]
    )
    assert meta["weights"] == {"spatial": 0.5, "temporal": 0.5}
    assert not fused.complete
    import json

    json.dumps(meta)  # the metadata is JSON-able, for a run store or a card


def test_fuse_takes_label_results():
    spatial = SpatialResult(scores=np.array([0.4, 0.6]), rationales=["", ""])
    np.testing.assert_allclose(fuse(spatial, [1.0, 0.0]).scores, [0.7, 0.3])


@pytest.mark.parametrize(
    ("spatial", "temporal", "weights", "match"),
    [
        ([0.1], [0.1], (-1, 1), "non-negative"),
        ([0.1], [0.1], (0, 0), "not both zero"),
        (None, None, (0.5, 0.5), "at least one source"),
        ([0.1, 0.2], [0.1], (0.5, 0.5), "2 scores but temporal has 1"),
        ([1.5], [0.1], (0.5, 0.5), r"\[0, 1\]"),
        ([[0.1]], [0.1], (0.5, 0.5), "1-D"),
    ],
)
def test_fuse_rejects(spatial, temporal, weights, match):
    with pytest.raises(ValueError, match=match):
        fuse(spatial, temporal, weights)


def test_run_statistics():
    rows = [
        {"spatial": [0.1, 0.6, 0.9], "temporal": [0.0, 1.0, 1.0], "scores": [0.05, 0.8, 0.95]},
        {"spatial": [0.9, 0.5, 0.1], "temporal": [0.0, 0.5, 1.0], "scores": [0.45, 0.5, 0.55]},
        # A temporal label that picks no frame is constant: correlation is undefined there.
        {"spatial": [0.3, 0.2, NAN], "temporal": [0.0, 0.0, 0.0], "scores": [0.15, 0.1, 0.0]},
    ]
    stats = run_statistics(rows, bins=4)
    assert stats["samples"] == 3
    spatial = stats["histograms"]["spatial"]
    assert spatial["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert spatial["counts"] == [3, 1, 2, 2]  # the NaN is ignored; 0.5 falls in [0.5, 0.75)
    assert sum(stats["histograms"]["temporal"]["counts"]) == 9
    assert stats["fraction_above_0.5"]["spatial"] == pytest.approx(3 / 8)
    assert stats["fraction_above_0.5"]["temporal"] == pytest.approx(3 / 9)
    agreement = stats["agreement"]
    assert agreement["samples"] == 2 and agreement["undefined"] == 1
    # Row 1: Pearson 0.866, Spearman 0.866 (ties share ranks); row 2: both -1.
    assert agreement["pearson"] == pytest.approx(
        (np.corrcoef([0.1, 0.6, 0.9], [0, 1, 1])[0, 1] - 1) / 2
    )
    assert agreement["spearman"] == pytest.approx((np.sqrt(3) / 2 - 1) / 2)


def test_run_statistics_of_nothing():
    stats = run_statistics([])
    assert stats["samples"] == 0 and stats["agreement"]["pearson"] is None
    assert stats["fraction_above_0.5"] == {"spatial": None, "temporal": None, "scores": None}


def test_statistics_ignore_the_placeholders_of_a_failed_source():
    import json

    from fslabels.fusion import run_statistics

    meta = {"failed": {"temporal": "no JSON"}, "filled": {"temporal": {"value": 0.0,
            "positions": [0, 1, 2, 3]}}}  # fmt: skip
    row = {"spatial": [0.9, 0.8, 0.1, 0.2], "temporal": [0.0] * 4, "scores": [0.9, 0.8, 0.1, 0.2],
           "label_meta": json.dumps(meta)}  # fmt: skip
    stats = run_statistics([row])
    assert sum(stats["histograms"]["temporal"]["counts"]) == 0
    assert stats["fraction_above_0.5"]["temporal"] is None
    assert stats["fraction_above_0.5"]["spatial"] == 0.5
