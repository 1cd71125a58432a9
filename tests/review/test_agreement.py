"""Agreement of pseudo-labels with human labels, computed by hand on small rows."""

from __future__ import annotations

import json

import pytest

from fslabels.review.agreement import agreement_report, top_frames


def _row(sample_id: str, spatial, temporal, scores, human, verdict=None, comment="") -> dict:
    review = {"verdict": verdict, "comment": comment} if verdict else {}
    return {
        "sample_id": sample_id,
        "question": f"q {sample_id}",
        "spatial": spatial,
        "temporal": temporal,
        "scores": scores,
        "human": human,
        "review": json.dumps(review),
    }


def test_top_frames_break_ties_towards_earlier_candidates():
    assert top_frames([0.1, 0.9, 0.9, 0.2, 0.9], 2).tolist() == [1, 2]
    assert top_frames([0.5, 0.1], 5).tolist() == [0, 1]  # capped at n
    with pytest.raises(ValueError, match="top-k must be at least 1"):
        top_frames([0.1], 0)


def test_precision_recall_accept_rate_and_worst_rows():
    rows = [
        # human marks 1, 2; spatial top-2 = {1, 2} (perfect), temporal {0, 3}, fused {1, 3}
        _row(
            "a",
            [0.1, 0.9, 0.8, 0.2],
            [1, 0, 0, 1],
            [0.2, 0.9, 0.4, 0.6],
            [0, 1, 1, 0.0],
            "reject",
            "temporal off",
        ),
        # human marks nothing: precision counts every top frame as wrong, recall skips the row
        _row(
            "b", [0.9, 0.8, 0.1, 0.1], [0, 0, 1, 1], [0.5, 0.4, 0.6, 0.6], [0, 0, 0, 0.0], "accept"
        ),
        _row("c", [0.1] * 4, [0] * 4, [0.1] * 4, []),  # not reviewed: ignored
        # two reviewers disagree on candidate 3 (0.5 counts as marked)
        _row("d", [0.9, 0.1, 0.1, 0.8], [1, 0, 0, 1], [0.9, 0.1, 0.1, 0.9], [1, 0, 0, 0.5]),
    ]
    report = agreement_report(rows, k=2)
    assert report.reviewed == 3
    assert report.verdicts == {"reject": 1, "accept": 1, "none": 1}
    assert report.accept_rate == 0.5
    by = {s.source: s for s in report.sources}
    # spatial: a 2/2, b 0/2, d 2/2 -> precision 4/6; recall over a, d: 4/4
    assert by["spatial"].precision == pytest.approx(4 / 6) and by["spatial"].recall == 1.0
    # temporal: a {0,3}: 0, b {2,3}: 0, d {0,3}: 2 -> 2/6; recall 2/4
    assert by["temporal"].precision == pytest.approx(2 / 6)
    assert by["temporal"].recall == pytest.approx(2 / 4)
    # fused: a {1,3}: 1, b {2,3}: 0, d {0,3}: 2 -> 3/6, recall 3/4
    assert (by["fused"].hits, by["fused"].top, by["fused"].marked) == (3, 6, 4)
    assert [w.sample_id for w in report.worst] == ["b", "a"]  # F1 0, then 0.5; d is perfect
    assert report.worst[1].comment == "temporal off" and report.worst[1].human_frames == [1, 2]
    text = report.to_markdown()
    assert "Accept rate of the pseudo-labels: **50.0%**" in text
    assert "| fused | 50.0% | 75.0% | 3 | 6 | 4 |" in text
    assert report.to_png()[:4] == b"\x89PNG"


def test_no_reviews_gives_empty_numbers():
    report = agreement_report([_row("c", [0.1], [0.0], [0.1], [])], k=4)
    assert report.reviewed == 0 and report.accept_rate is None and not report.worst
    assert all(s.precision is None and s.recall is None for s in report.sources)
    assert "–" in report.to_markdown()
