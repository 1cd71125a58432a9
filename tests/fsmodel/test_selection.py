"""Properties of the pure selection strategies (fsmodel.selection).

Why the NMS spacing holds for every n and k: each pick suppresses at most 2δ + 1 candidates, so
after k - 1 picks at least n - (k - 1)(2δ + 1) remain. With δ = floor(n / 4k) that is always
positive (δ = 0: k ≤ n; δ ≥ 1: 4kδ ≤ n gives (k - 1)(2δ + 1) < n / 2 + k - 1 < n). Greedy
therefore always finds k picks that are pairwise more than δ apart, and the fill step is reachable
only with a larger radius, which the fill tests patch in.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsmodel import selection
from fsmodel.selection import RULES, greedy_nms, select, suppression_radius, topk, uniform

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def scores_and_k(draw, max_n: int = 160):
    n = draw(st.integers(min_value=1, max_value=max_n))
    # A small value pool makes ties common; a float pool covers the general case.
    values = draw(
        st.one_of(
            st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n, max_size=n),
            st.lists(
                st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                min_size=n,
                max_size=n,
            ),
        )
    )
    k = draw(st.integers(min_value=1, max_value=n))
    return np.asarray(values, dtype=np.float64), k


def _check_contract(picks: np.ndarray, n: int, k: int) -> None:
    assert picks.dtype == np.int64
    assert picks.shape == (k,)
    assert len(set(picks.tolist())) == k, "picks must be distinct"
    assert np.all(np.diff(picks) > 0), "picks must be ascending"
    assert picks.min() >= 0 and picks.max() < n


@pytest.mark.parametrize("name", sorted(RULES))
@SETTINGS
@given(case=scores_and_k())
def test_every_strategy_returns_k_distinct_ascending_positions(name, case):
    scores, k = case
    picks = select(scores, k, name)
    _check_contract(picks, scores.size, k)
    # Pure: the input is left alone and the same call gives the same answer.
    again = select(scores.copy(), k, name)
    assert np.array_equal(picks, again)


@SETTINGS
@given(case=scores_and_k())
def test_nms_picks_are_more_than_delta_apart(case):
    scores, k = case
    picks = greedy_nms(scores, k)
    delta = suppression_radius(scores.size, k)
    assert delta == scores.size // (4 * k)
    if k > 1:
        assert np.diff(picks).min() > delta


@SETTINGS
@given(case=scores_and_k())
def test_nms_first_pick_is_the_best_candidate(case):
    scores, k = case
    best = int(np.argmax(scores))  # argmax returns the earliest of tied maxima
    assert best in greedy_nms(scores, k).tolist()


@SETTINGS
@given(case=scores_and_k())
def test_nms_matches_a_reference_implementation(case):
    scores, k = case
    n = scores.size
    delta = n // (4 * k)
    chosen: list[int] = []
    # Reference: repeatedly scan for the best unsuppressed candidate (earliest on ties).
    while len(chosen) < k:
        candidates = [
            i for i in range(n) if all(abs(i - c) > delta for c in chosen) and i not in chosen
        ]
        if not candidates:
            break
        chosen.append(max(candidates, key=lambda i: (scores[i], -i)))
    assert len(chosen) == k, "the δ rule always leaves room for k picks (module docstring)"
    assert greedy_nms(scores, k).tolist() == sorted(chosen)


@SETTINGS
@given(case=scores_and_k())
def test_topk_takes_the_k_best(case):
    scores, k = case
    picks = topk(scores, k)
    rest = np.setdiff1d(np.arange(scores.size), picks)
    if rest.size:
        assert scores[picks].min() >= scores[rest].max()


@SETTINGS
@given(n=st.integers(1, 400), data=st.data())
def test_uniform_spreads_picks_over_segment_midpoints(n, data):
    k = data.draw(st.integers(1, n))
    scores = data.draw(
        st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n).map(np.asarray)
    )
    picks = uniform(scores, k)
    _check_contract(picks, n, k)
    assert np.array_equal(picks, uniform(np.zeros(n), k)), "uniform ignores the scores"
    expected = [int((i + 0.5) * n / k) for i in range(k)]
    assert picks.tolist() == expected


def test_ties_go_to_the_earlier_candidate():
    flat = np.ones(10)
    assert topk(flat, 3).tolist() == [0, 1, 2]
    # δ = floor(10 / 8) = 1: 0 suppresses 1, then 2 is the earliest free candidate, and so on.
    assert greedy_nms(flat, 2).tolist() == [0, 2]
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2, 0.1, 0.1, 0.1])
    assert topk(scores, 1).tolist() == [1]
    assert greedy_nms(scores, 1).tolist() == [1]


def test_nms_suppresses_neighbours_of_a_peak():
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.95])
    # n = 8, k = 2: δ = 1, so 2 (next to 1) is suppressed; topk keeps it.
    assert greedy_nms(scores, 2).tolist() == [1, 7]
    assert topk(scores, 2).tolist() == [1, 7]
    long = np.repeat(scores, 4)  # n = 32, k = 2: δ = 4 spans a whole plateau of 4 equal scores
    assert greedy_nms(long, 2).tolist() == [4, 28]
    assert topk(long, 2).tolist() == [28, 29]
    # k = 3 on n = 8: δ = 0, nothing is suppressed and NMS equals top-k.
    assert greedy_nms(scores, 3).tolist() == topk(scores, 3).tolist() == [1, 2, 7]


def test_nms_fills_with_the_best_unselected_when_suppression_leaves_too_few(monkeypatch):
    # A radius larger than the δ rule makes suppression leave fewer than k candidates.
    monkeypatch.setattr(selection, "suppression_radius", lambda n, k: n)
    scores = np.array([0.3, 0.9, 0.8, 0.1, 0.7])
    # Greedy takes 1 and suppresses everything; the fill adds the best of the rest: 2, then 4.
    assert greedy_nms(scores, 3).tolist() == [1, 2, 4]
    ties = np.array([0.5, 0.5, 0.9, 0.5])
    assert greedy_nms(ties, 2).tolist() == [0, 2], "fill ties go to the earlier candidate"


def test_nms_with_radius_two_fills_only_the_shortfall(monkeypatch):
    monkeypatch.setattr(selection, "suppression_radius", lambda n, k: 2)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    # Greedy: 0 (suppresses 1, 2), then 3 (suppresses 4, 5); the fill adds 1, the best left.
    assert greedy_nms(scores, 3).tolist() == [0, 1, 3]


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown selection strategy 'best'") as err:
        select(np.ones(4), 2, "best")
    for name in ("nms", "topk", "uniform"):
        assert name in str(err.value)


def test_register_rule_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        selection.register_rule("nms")(lambda scores, k: scores)


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize(
    ("scores", "k", "match"),
    [
        (np.ones(4), 0, "between 1 and the number of candidates"),
        (np.ones(4), -1, "between 1 and the number of candidates"),
        (np.ones(4), 5, r"between 1 and the number of candidates \(4\), got 5"),
        (np.ones(4), 2.0, "must be an integer"),
        (np.ones(4), True, "must be an integer"),
        (np.array([0.1, np.nan, 0.3]), 1, r"finite; positions \[1\]"),
        (np.array([0.1, np.inf]), 1, "finite"),
        (np.ones((2, 2)), 1, "1-D"),
        (np.array([]), 1, "non-empty"),
    ],
)
def test_bad_inputs_raise_value_error(name, scores, k, match):
    with pytest.raises(ValueError, match=match):
        select(scores, k, name)


def test_numpy_integer_k_is_accepted():
    assert select(np.arange(6.0), np.int64(2), "nms").tolist() == [4, 5]


# --- exact budgets over distinct frames --------------------------------------------------------


@st.composite
def scores_frames_and_k(draw, max_n: int = 64):
    scores, k = draw(scores_and_k(max_n=max_n))
    # Non-decreasing frame indices with runs: a video with fewer frames than candidates.
    steps = draw(
        st.lists(st.sampled_from([0, 0, 1, 1, 2]), min_size=scores.size, max_size=scores.size)
    )
    return scores, np.cumsum(steps), k


@pytest.mark.parametrize("name", sorted(RULES))
@SETTINGS
@given(case=scores_frames_and_k())
def test_select_distinct_gives_k_picks_of_which_min_k_n_distinct_frames(name, case):
    scores, frames, k = case
    picks = selection.select_distinct(scores, frames, k, name)
    _check_contract(picks.positions, scores.size, k)
    shown = frames[picks.positions]
    distinct = len(np.unique(frames))
    assert len(np.unique(shown)) == min(k, distinct) == picks.distinct
    # Repeats are marked, and only a video with fewer than k frames has any.
    assert int(picks.repeated.sum()) == k - min(k, distinct)
    for i in np.flatnonzero(picks.repeated):
        assert shown[i] in shown[:i]


@pytest.mark.parametrize("name", sorted(RULES))
@SETTINGS
@given(case=scores_and_k())
def test_select_distinct_is_the_rule_when_every_candidate_is_its_own_frame(name, case):
    scores, k = case
    picks = selection.select_distinct(scores, np.arange(scores.size) * 3, k, name)
    assert np.array_equal(picks.positions, select(scores, k, name))
    assert not picks.repeated.any()


def test_select_distinct_spends_the_budget_on_new_frames():
    """The issue's case: a 10-frame video has 16 candidates; the best scores sit on repeats."""
    frames = np.array([0, 0, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7, 7, 8, 9, 9])
    scores = np.where(np.r_[True, np.diff(frames) == 0], 1.0, 0.0)  # every repeat scores high
    for name in sorted(RULES):
        picks = selection.select_distinct(scores, frames, 8, name)
        assert len(np.unique(frames[picks.positions])) == 8, name
    with pytest.raises(ValueError, match="one frame index per candidate"):
        selection.select_distinct(scores, frames[:-1], 8, "nms")
