"""Annotations → per-candidate human labels, pseudo-labels → predictions, and the UI config."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from fslabels.review import config as ui
from fslabels.review.export import candidate_frame_numbers, prediction_result
from fslabels.review.importer import human_labels, premarked_positions, reviewer_name

FPS = 25.0
# 8 candidates of a 100-frame video at 25 fps: frames 6, 18, 31, 43, 56, 68, 81, 93
FRAMES = [6, 18, 31, 43, 56, 68, 81, 93]
BLOCK = {
    "num_candidates": 8,
    "fps": FPS,
    "num_frames": 100,
    "top_k": 3,
    "timestamps": [f / FPS for f in FRAMES],
    "premarked": [2, 3, 5],  # the fused top-3 of SCORES, as export records them
}
SCORES = [0.1, 0.2, 0.9, 0.8, 0.3, 0.7, 0.1, 0.0]


def _range(start, end, label=ui.RELEVANT):
    return {
        "from_name": ui.RANGES,
        "type": "timelinelabels",
        "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [label]},
    }


def _frame(item, choice):
    return {
        "from_name": ui.FRAME_CHOICE,
        "type": "choices",
        "value": {"choices": [choice]},
        "item_index": item,
    }


def _verdict(value):
    return {"from_name": ui.VERDICT, "type": "choices", "value": {"choices": [value]}}


def test_timeline_numbers_are_one_based_frames():
    assert candidate_frame_numbers(BLOCK["timestamps"], FPS).tolist() == [f + 1 for f in FRAMES]


def test_ranges_mark_candidates_inside_and_frame_choices_override():
    # frames 31..57 on the timeline = video frames 30..56 -> candidates 2 (31), 3 (43), 4 (56)
    labels, problems = human_labels({"result": [_range(31, 57)]}, BLOCK, "t")
    assert not problems and np.flatnonzero(labels).tolist() == [2, 3, 4]
    # a range ending one frame before candidate 4's frame leaves it out
    labels, _ = human_labels({"result": [_range(31, 56)]}, BLOCK, "t")
    assert np.flatnonzero(labels).tolist() == [2, 3]
    labels, _ = human_labels(
        {"result": [_range(31, 57), _frame(3, ui.IRRELEVANT), _frame(7, ui.RELEVANT)]},
        BLOCK,
        "t",
    )
    assert np.flatnonzero(labels).tolist() == [2, 4, 7] and labels.dtype == np.float32


def test_unmarked_accept_keeps_the_pre_annotation_and_reject_marks_nothing():
    labels, _ = human_labels({"result": [_verdict("accept")]}, BLOCK, "t")
    assert np.flatnonzero(labels).tolist() == [2, 3, 5]  # what the task showed pre-marked
    labels, _ = human_labels({"result": [_verdict("reject")]}, BLOCK, "t")
    assert not labels.any()


def test_unmarked_accept_uses_the_positions_the_task_showed():
    # The task was exported from a version whose top-3 were 0, 1, 7; the dataset imported onto
    # ranks 2, 3, 5 highest. The reviewer accepted what they saw.
    shown = {**BLOCK, "premarked": [0, 1, 7]}
    labels, problems = human_labels({"result": [_verdict("accept")]}, shown, "t")
    assert not problems and np.flatnonzero(labels).tolist() == [0, 1, 7]
    unknown = {k: v for k, v in BLOCK.items() if k != "premarked"}
    labels, problems = human_labels({"result": [_verdict("accept")]}, unknown, "task 3")
    assert not labels.any()
    assert problems == [
        "task 3: accepted without marks, but the task does not record which frames it showed "
        "pre-marked; mark the relevant frames in Label Studio"
    ]


def test_premarked_positions_from_the_task_data():
    block = {k: v for k, v in BLOCK.items() if k != "premarked"}
    scores = {"fused": [0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.7]}
    assert premarked_positions({ui.TASK_KEY: {**block, "premarked": [5, 1]}}) == [1, 5]
    # tasks exported before "premarked" existed: the top-k of the curve the task shows
    assert premarked_positions({ui.TASK_KEY: block, "scores": scores}) == [0, 1, 7]
    assert premarked_positions({ui.TASK_KEY: block}) is None


def test_reviewers_are_pseudonyms_unless_emails_are_asked_for():
    user = {"id": 3, "email": "ann@example.org", "username": "ann"}
    assert reviewer_name(3, user) == "reviewer-3"
    assert reviewer_name(3, user, emails=True) == "ann@example.org"
    assert reviewer_name(None, {}) == "reviewer-unknown"
    assert reviewer_name(4, {}, emails=True) == "reviewer-4"  # no address known


def test_bad_ranges_and_items_are_named():
    _, problems = human_labels(
        {"result": [_range(0, 5), _range(90, 101), _range(50, 40), _frame(8, ui.RELEVANT)]},
        BLOCK,
        "task 7",
    )
    assert len(problems) == 4
    assert problems[0] == (
        "task 7: range frames 0..5 is outside the video (frames 1..100) or reversed"
    )
    assert "range frames 90..101" in problems[1] and "range frames 50..40" in problems[2]
    assert problems[3] == "task 7: frame choice on item 8, but the task has 8 frames"


def test_prediction_round_trips_through_import():
    row = {"scores": SCORES, "timestamps": BLOCK["timestamps"]}
    result, score = prediction_result(row, FPS, k=3)
    items = sorted(r["item_index"] for r in result if r["from_name"] == ui.FRAME_CHOICE)
    ranges = [r["value"]["ranges"][0] for r in result if r["from_name"] == ui.RANGES]
    assert items == [2, 3, 5] and score == np.mean([0.9, 0.8, 0.7])
    assert ranges == [{"start": 32, "end": 44}, {"start": 69, "end": 69}]  # 2-3 merged, 5 alone
    only_ranges = [r for r in result if r["from_name"] == ui.RANGES]
    labels, _ = human_labels({"result": only_ranges}, BLOCK, "t")
    assert np.flatnonzero(labels).tolist() == [2, 3, 5]


def test_label_config_is_xml_with_the_controls_import_reads():
    root = ET.fromstring(ui.label_config("a <title> & more"))
    names = {el.get("name"): el.tag for el in root.iter() if el.get("name")}
    assert names[ui.VIDEO] == "Video" and names[ui.RANGES] == "TimelineLabels"
    assert names[ui.FRAMES] == "Image" and names[ui.FRAME_CHOICE] == "Choices"
    assert names[ui.VERDICT] == "Choices" and names[ui.COMMENT] == "TextArea"
    assert names[ui.CURVE] == "TimeSeries"
    frame_choice = next(el for el in root.iter("Choices") if el.get("name") == ui.FRAME_CHOICE)
    assert frame_choice.get("perItem") == "true"
