"""Sampling strategies: deterministic under a seed, ordered by their priority."""

from __future__ import annotations

import numpy as np
import pytest

from fslabels.review.sampling import SAMPLING_STRATEGIES, sample_rows


def _rows() -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        spatial = rng.uniform(0, 1, 8)
        temporal = np.clip(spatial + (i / 12) * rng.choice([-1, 1], 8), 0, 1)
        scores = np.full(8, 0.5) if i == 7 else (spatial + temporal) / 2  # row 7: most uncertain
        rows.append(
            {
                "sample_id": f"s{i}",
                "spatial": spatial.tolist(),
                "temporal": temporal.tolist(),
                "scores": scores.tolist(),
                "human": [],
            }
        )
    return rows


def test_strategies_are_registered_and_unknown_names_list_them():
    assert set(SAMPLING_STRATEGIES) >= {"random", "uncertain", "disagree"}
    with pytest.raises(
        ValueError,
        match=r"unknown sampling strategy 'hard'; known strategies: \['disagree', 'random', 'uncertain'\]",
    ):
        sample_rows(_rows(), 3, strategy="hard")
    with pytest.raises(ValueError, match="--sample must be >= 0"):
        sample_rows(_rows(), -1)


def test_random_is_seeded_and_without_replacement():
    rows = _rows()
    a, b, c = (sample_rows(rows, 5, "random", seed=s) for s in (1, 1, 2))
    assert a == b and a != c and len(set(a)) == 5
    assert sorted(sample_rows(rows, None, "random", seed=3)) == list(range(12))


def test_uncertain_and_disagree_rank_by_their_priority():
    rows = _rows()
    assert sample_rows(rows, 1, "uncertain")[0] == 7
    gaps = [np.mean(np.abs(np.subtract(r["spatial"], r["temporal"]))) for r in rows]
    assert sample_rows(rows, 4, "disagree") == list(np.argsort(gaps)[::-1][:4])


def test_reviewed_rows_are_left_out_unless_asked():
    rows = _rows()
    rows[7]["human"] = [0.0] * 8
    assert 7 not in sample_rows(rows, None, "uncertain")
    assert sample_rows(rows, 1, "uncertain", include_reviewed=True) == [7]
