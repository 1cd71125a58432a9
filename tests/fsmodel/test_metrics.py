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
