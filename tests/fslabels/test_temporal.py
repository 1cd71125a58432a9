"""Temporal labels: captions per frame, the frame-selection prompt, robust reply parsing, bounded
retries, on the real transformers backend over the tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from fslabels.backends import ChatResponse
from fslabels.temporal import (
    FRAMES_SCHEMA,
    Captioner,
    FrameParseError,
    TemporalLabeler,
    parse_frame_indices,
)

QUESTION = "When does the red circle appear?"
CAPTIONS = [f"a {c} square on a grey background" for c in ("red", "blue", "green", "red")] * 2
TIMESTAMPS = [0.25 * i for i in range(8)]


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "frames", "note"),
    [
        ('{"frames": [3, 7]}', [3, 7], None),
        ('```json\n{"frames": [1, 2]}\n```', [1, 2], None),
        ('```\n{"frames": [5]}\n```\nThese frames show the circle.', [5], None),
        ('Sure! {"frames": [4, 1]} Frames 1 and 4 show it.', [1, 4], None),
        ('{"frames": ["3-5", 7]}', [3, 4, 5, 7], None),
        ('{"frames": ["Frame 2", "6 to 7"]}', [2, 6, 7], None),
        ('{"frames": [2.0, 3]}', [2, 3], None),
        ('{"frames": []}', [], None),
        ('{"frames": null}', [], "null"),
        ('{"frames": 4}', [4], "single value"),
        ("{'frames': [1, 3]}", [1, 3], "Python-style"),
        ('{"frames": [1, 2,]}', [1, 2], "trailing commas"),
        ("[0, 2]", [0, 2], None),
        ('{"frame_indices": [5]}', [5], "frame_indices"),
        ('{"reasoning": "the circle is red"} {"frames": [6]}', [6], None),
        ('{"frames": [2, 2, 6]}', [2, 6], "duplicate"),
        ('{"frames": [-1, 3, 12]}', [3], "out-of-range"),
        ('Counting 1-based: {"frames": [1, 8]}', [0, 7], "counts from 1"),
        ('{"frames": [8, 3]}', [2, 7], "1-based"),
        ('{"frames": [0, 8]}', [0], "out-of-range"),
    ],
)
def test_malformed_replies_are_read(reply, frames, note):
    parsed = parse_frame_indices(reply, 8)
    assert parsed.frames == frames
    if note is None:
        assert parsed.notes == []
    else:
        assert any(note in n for n in parsed.notes), parsed.notes


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("Frames three and five.", "no JSON"),
        ('{"answer": "yes"}', "no 'frames' list"),
        ('{"frames": ["lots"]}', "not a frame number"),
        ('{"frames": [1.5]}', "whole frame number"),
        ('{"frames": {"a": 1}}', "not a list"),
        ('{"frames": [true]}', "not a frame number"),
        ('[{"frame": 1}]', "list of objects"),
    ],
)
def test_unreadable_replies_say_why(reply, why):
    with pytest.raises(FrameParseError, match=why):
        parse_frame_indices(reply, 8)


# --- the prompt and the result ----------------------------------------------------------------


def test_prompt_numbers_the_captions_with_their_times(text_backend):
    labeler = TemporalLabeler(text_backend)
    request = labeler.request(CAPTIONS, TIMESTAMPS, QUESTION, ["A. early", "B. late"])
    text = request.messages[0]["content"]
    assert "Frame 0 (0.0 s): a red square on a grey background" in text
    assert "Frame 7 (1.8 s): a red square on a grey background" in text
    assert f"Question: {QUESTION}\nOptions:\nA. early\nB. late" in text
    assert '{"frames": [3, 17]}' in text and "(0 to 7)" in text
    # The transformers backend has no structured output, so no schema is sent.
    assert request.response_format is None
    assert (
        TemporalLabeler(text_backend, structured_output=True)
        .request(CAPTIONS, TIMESTAMPS, QUESTION)
        .response_format
        == FRAMES_SCHEMA
    )
    assert (
        labeler.request(["", "x"], [0.0, 1.0], QUESTION)
        .messages[0]["content"]
        .count("(no caption)")
        == 1
    )
    with pytest.raises(ValueError, match="timestamps"):
        labeler.request(CAPTIONS, TIMESTAMPS[:3], QUESTION)


def test_parse_gives_binary_scores_and_repairs_keep_the_reply(text_backend):
    labeler = TemporalLabeler(text_backend)
    result = labeler.parse(ChatResponse(text='{"frames": [2, 5]}', prompt_tokens=9), 8)
    assert result.ok and result.frames == [2, 5]
    assert result.scores.tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
    assert result.attempts == 1 and result.prompt_tokens == 9

    bad = ChatResponse(text="I think frame two.")
    failed = labeler.parse(bad, 8)
    assert np.isnan(failed.scores).all() and "no JSON" in failed.error and failed.raw == bad.text
    request = labeler.request(CAPTIONS, TIMESTAMPS, QUESTION)
    repair = labeler.repair_request(request, bad, failed.error, 8)
    assert repair.messages[:-2] == request.messages
    assert repair.messages[-2] == {"role": "assistant", "content": bad.text}
    assert (
        "could not be read" in repair.messages[-1]["content"]
        and "0 to 7" in repair.messages[-1]["content"]
    )
    # A request that failed in transport is sent again unchanged.
    assert labeler.repair_request(request, ChatResponse.failed("HTTP 503"), "x", 8) is request


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_retries_stop_at_the_bound_and_keep_every_reply(text_backend, max_attempts):
    # The random tiny Qwen2 never writes JSON: every attempt fails, so the bound is what stops it.
    labeler = TemporalLabeler(text_backend, max_new_tokens=8, max_attempts=max_attempts)
    (result,) = labeler.label_batch([_job()])
    assert result.attempts == max_attempts and len(result.replies) == max_attempts
    assert result.raw == result.replies[-1]
    assert not result.ok and f"gave up after {max_attempts} attempts" in result.error
    assert np.isnan(result.scores).all() and result.frames == []
    assert result.completion_tokens == 8 * max_attempts


def test_label_batch_labels_each_question(text_backend):
    labeler = TemporalLabeler(text_backend, max_new_tokens=4, max_attempts=2)
    results = labeler.label_batch([_job(), _job("Is there a blue square?")])
    assert len(results) == 2 and all(r.attempts == 2 for r in results)
    single = labeler.label(CAPTIONS, TIMESTAMPS, QUESTION)
    assert single.replies == results[0].replies  # batching does not change replies


def test_cache_keys(text_backend, tiny_models):
    from fslabels.backends import get_backend

    labeler = TemporalLabeler(text_backend)
    other = get_backend("transformers", model=str(tiny_models["qwen2"]), batch_size=32)
    assert TemporalLabeler(other).fingerprint() == labeler.fingerprint()
    assert TemporalLabeler(text_backend, structured_output=True).prompt_hash != labeler.prompt_hash
    assert TemporalLabeler(text_backend, max_attempts=5).fingerprint() != labeler.fingerprint()


def _job(question: str = QUESTION):
    from fslabels.temporal import TemporalJob

    return TemporalJob(CAPTIONS, TIMESTAMPS, question)


# --- captions -------------------------------------------------------------------------------


def test_captions_one_line_per_frame(vl_backend, frames):
    captioner = Captioner(vl_backend, max_new_tokens=6)
    requests = captioner.requests(frames)
    assert len(requests) == len(frames)
    assert all(r.messages[0]["content"][1]["text"] == captioner.prompt for r in requests)
    result = captioner.caption(frames)
    assert len(result.captions) == len(frames)
    for position, caption in enumerate(result.captions):
        assert "\n" not in caption
        assert caption or position in {f.position for f in result.failures}
    assert result.prompt_tokens > 0 and result.completion_tokens <= 6 * len(frames)
    assert Captioner(vl_backend, max_new_tokens=6).caption(frames).captions == result.captions


def test_caption_failures_are_recorded(vl_backend):
    captioner = Captioner(vl_backend)
    result = captioner.parse(
        [ChatResponse(text="  a red\nsquare "), ChatResponse(text=" "), ChatResponse.failed("boom")]
    )
    assert result.captions == ["a red square", "", ""]
    assert [(f.position, f.error) for f in result.failures] == [
        (1, "empty caption"),
        (2, "request failed: boom"),
    ]
