import math

import numpy as np
import pytest

from fsmodel.metrics import precision_at_k, recall_at_k, relevant_positions


def test_relevant_positions_threshold_and_fallback():
    labels = np.array([0.0, 0.5, 0.49, 1.0])
    assert relevant_positions(labels).tolist() == [1, 3]
    low = np.array([0.1, 0.3, 0.3, 0.2])
    assert relevant_positions(low).tolist() == []
    assert relevant_positions(low, top=2).tolist() == [1, 2]  # tie: earlier first
    with pytest.raises(ValueError, match="1-D"):
        relevant_positions(np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("chosen", "relevant", "recall", "precision"),
    [
        ([0, 1], [0, 1, 2, 3], 1.0, 1.0),  # k=2 can cover at most 2 of 4
        ([0, 5], [0, 1, 2, 3], 0.5, 0.5),
        ([4, 5, 6], [5], 1.0, 1 / 3),
        ([1, 2], [7, 8], 0.0, 0.0),
    ],
)
def test_recall_and_precision(chosen, relevant, recall, precision):
    assert recall_at_k(np.array(chosen), np.array(relevant)) == pytest.approx(recall)
    assert precision_at_k(np.array(chosen), np.array(relevant)) == pytest.approx(precision)


def test_nothing_relevant_is_nan_and_empty_choice_is_an_error():
    assert math.isnan(recall_at_k(np.array([1]), np.array([], np.int64)))
    with pytest.raises(ValueError, match="at least one"):
        recall_at_k(np.array([], np.int64), np.array([1]))


def test_roc_auc_counts_ties_half_and_is_nan_for_one_class():
    from fsmodel.metrics import roc_auc

    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.8])
    relevant = np.array([0, 0, 1, 1, 0], bool)
    # relevant 0.35 beats 0.1 only; relevant 0.8 beats 0.1 and 0.4 and ties 0.8: 3.5 of 6 pairs
    assert roc_auc(scores, relevant) == pytest.approx(3.5 / 6)
    assert roc_auc(-scores, relevant) == pytest.approx(1 - 3.5 / 6)
    assert np.isnan(roc_auc(scores, np.zeros(5, bool)))


def test_expected_top_k_is_the_mean_over_random_tie_orders():
    from fsmodel.metrics import coverage_at_k, expected_top_k

    rng = np.random.default_rng(0)
    scores = (rng.random(32) > 0.7).astype(float)  # 0/1 labels: many ties
    groups = np.full(32, -1)
    groups[[3, 4, 10, 11, 12, 20]] = [0, 0, 1, 1, 1, 2]
    relevant = np.flatnonzero(groups >= 0)
    got = expected_top_k(scores, 8, groups)
    sampled = {"recall": [], "precision": [], "coverage": []}
    for _ in range(4000):
        perm = rng.permutation(32)
        top = perm[np.argsort(-scores[perm], kind="stable")][:8]
        sampled["recall"].append(recall_at_k(top, relevant))
        sampled["precision"].append(precision_at_k(top, relevant))
        sampled["coverage"].append(coverage_at_k(top, groups))
    for metric, values in sampled.items():
        assert got[metric] == pytest.approx(np.mean(values), abs=0.02), metric
    distinct = np.linspace(1, 0, 32)  # no ties: the plain top 8
    assert expected_top_k(distinct, 8, groups) == {
        "recall": recall_at_k(np.arange(8), relevant),
        "precision": precision_at_k(np.arange(8), relevant),
        "coverage": coverage_at_k(np.arange(8), groups),
    }


def test_candidates_in_spans_flags_a_span_between_candidates():
    from fsmodel.metrics import candidates_in_spans

    times = np.arange(8) * 0.5  # 0, 0.5, ... 3.5
    groups, flagged = candidates_in_spans([(0.5, 1.5), (2.6, 2.9)], times)
    assert groups.tolist() == [-1, 0, 0, -1, -1, 1, -1, -1] and flagged == [1]
