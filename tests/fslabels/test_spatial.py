"""Spatial labels: reading p(True) at the answer slot, forcing it, failures, and the real
transformers backend over the tiny Qwen2-VL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fslabels.backends import ChatRequest, ChatResponse, get_backend
from fslabels.spatial import (
    ANSWER_MARKER,
    SpatialLabeler,
    answer_probability,
    format_question,
)

QUESTION = "When does the red circle appear?"


def _reply(
    tokens: list[str], slot: int | None = None, dist: dict[str, float] | None = None
) -> ChatResponse:
    """A reply as a backend returns it: tokens, their logprobs, alternatives at each step."""
    top = [{t: -0.1} for t in tokens]
    if slot is not None and dist is not None:
        top[slot] = {t: math.log(p) for t, p in dist.items()}
    return ChatResponse(
        text="".join(tokens),
        tokens=tokens,
        token_logprobs=[next(iter(d.values())) for d in top],
        top_logprobs=top,
        completion_tokens=len(tokens),
    )


@pytest.fixture
def labeler(vl_backend):
    return SpatialLabeler(vl_backend)


# --- pure parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dist", "expected"),
    [
        ({" True": 0.6, " False": 0.2}, 0.75),
        ({" True": 0.3, "True": 0.3, " false": 0.1, "FALSE": 0.1, " maybe": 0.2}, 0.75),
        ({"**True": 0.2, " False.": 0.2}, 0.5),
        ({" Yes": 0.9, " False": 0.1}, 0.0),
    ],
)
def test_answer_probability_sums_every_spelling(dist, expected):
    p_true, p_false = answer_probability({t: math.log(p) for t, p in dist.items()})
    assert p_true / (p_true + p_false) == pytest.approx(expected)


def test_score_is_read_after_the_answer_marker(labeler):
    tokens = ["The", " frame", " is", " true", " to", " life", ".", " Answer", ":", " True"]
    reply = _reply(tokens, slot=9, dist={" True": 0.6, " False": 0.2, "True": 0.1})
    result = labeler.parse([reply])
    assert result.scores[0] == pytest.approx(0.7 / 0.9)
    assert result.rationales == ["The frame is true to life."]
    assert not result.forced[0] and result.ok


def test_markdown_around_the_answer_is_skipped(labeler):
    tokens = ["Helpful", ".", " Answer", ":", " **", "False", "**"]
    reply = _reply(tokens, slot=5, dist={"False": 0.7, "True": 0.1})
    assert labeler.parse([reply]).scores[0] == pytest.approx(0.125)


def test_without_a_marker_the_last_true_or_false_is_the_answer(labeler):
    tokens = ["It", " shows", " the", " circle", ",", " so", " True", "."]
    reply = _reply(tokens, slot=6, dist={" True": 0.5, " False": 0.5})
    result = labeler.parse([reply])
    assert result.scores[0] == pytest.approx(0.5) and result.rationales == [
        "It shows the circle, so"
    ]


def test_a_true_inside_a_cut_explanation_is_not_the_answer(labeler):
    cut = _reply(["It", " is", " true", " that", " the"])
    cut.finish_reason = "length"
    assert labeler.needs_force(cut)
    cut.finish_reason = "stop"  # a finished reply's last True/False is its answer
    assert not labeler.needs_force(cut)


def test_a_reply_cut_before_the_answer_needs_forcing(labeler):
    cut = _reply(["The", " frame", " shows", " a"])
    at_marker = _reply(["Nothing", ".", " Answer", ":"])
    done = _reply(["Answer", ":", " True"], slot=2, dist={" True": 0.9, " False": 0.1})
    requests = labeler.requests(np.zeros((3, 48, 64, 3), np.uint8), QUESTION)
    force = labeler.force_requests(requests, [cut, at_marker, done])
    assert sorted(force) == [0, 1]
    assert force[0].messages[-1] == {
        "role": "assistant",
        "content": f"The frame shows a\n{ANSWER_MARKER}",
    }
    assert force[1].messages[-1]["content"] == f"Nothing. {ANSWER_MARKER}"
    assert all(r.continue_final_message and r.max_new_tokens == 1 for r in force.values())
    assert force[0].messages[:-1] == requests[0].messages

    forced = {0: _reply([" False"], slot=0, dist={" False": 0.6, " True": 0.2})}
    result = labeler.parse([cut, at_marker, done], forced)
    assert result.scores[0] == pytest.approx(0.25) and result.forced.tolist() == [
        True,
        False,
        False,
    ]
    assert np.isnan(result.scores[1]) and result.scores[2] == pytest.approx(0.9)
    assert [f.position for f in result.failures] == [1]
    assert "forced answer pass was not run" in result.failures[0].error
    assert result.rationales[:2] == ["The frame shows a", "Nothing."]


def test_failures_keep_the_raw_reply_and_are_never_half(labeler):
    no_answer_word = _reply(
        ["Answer", ":", " maybe"], slot=2, dist={" maybe": 0.9, " perhaps": 0.05}
    )
    failed_request = ChatResponse.failed("HTTP 500: InternalServerError")
    no_logprobs = ChatResponse(text="Answer: True", completion_tokens=3)
    result = labeler.parse([no_answer_word, failed_request, no_logprobs])
    assert np.isnan(result.scores).all()
    errors = {f.position: f for f in result.failures}
    assert "neither True nor False" in errors[0].error and "' maybe'" in errors[0].error
    assert errors[0].raw == "Answer: maybe"
    assert "HTTP 500" in errors[1].error
    assert "no log-probabilities" in errors[2].error and errors[2].raw == "Answer: True"


def test_backends_without_prefill_record_a_failure_instead_of_forcing(labeler, monkeypatch):
    monkeypatch.setattr(labeler.backend, "supports_prefill", False)
    cut = _reply(["The", " frame"])
    requests = labeler.requests(np.zeros((1, 48, 64, 3), np.uint8), QUESTION)
    assert labeler.force_requests(requests, [cut]) == {}
    (failure,) = labeler.parse([cut]).failures
    assert "cannot prefill" in failure.error and failure.raw == "The frame"


def test_prompt_shape_and_hashes(vl_backend, tiny_models):
    cot = SpatialLabeler(vl_backend)
    request = cot.request(np.zeros((48, 64, 3), np.uint8), QUESTION, ["A. early", "B. late"])
    image, text = request.messages[0]["content"]
    assert image["type"] == "image"
    assert text["text"].startswith(format_question(QUESTION, ["A. early", "B. late"]))
    assert (
        "Explain briefly whether this frame helps answer the question, then answer True or False."
        in text["text"]
    )
    assert request.top_logprobs == 20 and request.temperature == 0.0

    direct = SpatialLabeler(vl_backend, cot=False)
    assert direct.request(np.zeros((48, 64, 3), np.uint8), QUESTION).max_new_tokens == 1
    assert direct.prompt_hash != cot.prompt_hash
    assert SpatialLabeler(vl_backend, instruction="Judge.").prompt_hash != cot.prompt_hash
    assert len(cot.prompt_hash) == 16
    # Batch size does not change outputs, so it does not change the cache key.
    other = get_backend("transformers", model=str(tiny_models["qwen2-vl"]), batch_size=1)
    assert SpatialLabeler(other).fingerprint() == cot.fingerprint()
    assert SpatialLabeler(vl_backend, max_new_tokens=64).fingerprint() != cot.fingerprint()


# --- the real backend -----------------------------------------------------------------------


def test_every_frame_scores_in_unit_interval_or_fails_on_record(vl_backend, frames):
    # Top-20 of a random tiny model rarely holds True/False: failures must be recorded, not 0.5.
    result = SpatialLabeler(vl_backend, max_new_tokens=6).label(
        frames, QUESTION, ["A. yes", "B. no"]
    )
    failed = sorted(f.position for f in result.failures)
    assert failed == np.flatnonzero(np.isnan(result.scores)).tolist()
    ok = np.isfinite(result.scores)
    assert ((result.scores[ok] >= 0) & (result.scores[ok] <= 1)).all()
    assert all(f.raw for f in result.failures)
    assert result.prompt_tokens > 0 and result.completion_tokens > 0


def test_forced_answer_is_the_true_false_ratio_of_the_next_token(vl_backend, frames, vocab_size):
    # 3 new tokens never reach "Answer:", so every frame goes through the forced pass; with the
    # whole vocabulary as alternatives, True/False are always among them.
    labeler = SpatialLabeler(
        vl_backend, max_new_tokens=3, top_logprobs=vocab_size, force_top_logprobs=vocab_size
    )
    requests = labeler.requests(frames, QUESTION)
    responses = vl_backend.generate(requests)
    force = labeler.force_requests(requests, responses)
    assert sorted(force) == list(range(len(frames)))
    forced = dict(zip(force, vl_backend.generate(list(force.values())), strict=True))
    result = labeler.parse(responses, forced)
    assert result.ok and result.forced.all()
    assert ((result.scores >= 0) & (result.scores <= 1)).all()
    assert result.rationales[0] == responses[0].text.strip()

    # The score of frame 0 recomputed by hand from one forward pass over the prefilled prompt.
    processor, model, tokenizer = vl_backend.processor, vl_backend.model, vl_backend.tokenizer
    prefill = force[0].messages[-1]["content"]
    text = processor.apply_chat_template(
        [
            {"role": "user", "content": [{"type": "image"}, requests[0].messages[0]["content"][1]]},
            {"role": "assistant", "content": prefill},
        ],
        tokenize=False,
        continue_final_message=True,
    )
    from PIL import Image

    inputs = processor(images=[Image.fromarray(frames[0])], text=[text], return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**inputs).logits[0, -1].float(), dim=-1)
    vocab = {tokenizer.decode([i]): i for i in range(len(tokenizer))}
    p_true = sum(float(probs[i]) for t, i in vocab.items() if t.strip().lower() == "true")
    p_false = sum(float(probs[i]) for t, i in vocab.items() if t.strip().lower() == "false")
    assert result.scores[0] == pytest.approx(p_true / (p_true + p_false), abs=1e-4)

    # The one-call convenience gives the same scores.
    again = labeler.label(frames, QUESTION)
    np.testing.assert_allclose(again.scores, result.scores, atol=1e-5)


def test_direct_answer_mode(vl_backend, frames, vocab_size):
    labeler = SpatialLabeler(
        vl_backend, cot=False, top_logprobs=vocab_size, force_top_logprobs=vocab_size
    )
    requests = labeler.requests(frames, QUESTION)
    assert all(r.max_new_tokens == 1 for r in requests)
    result = labeler.label(frames, QUESTION)
    assert result.ok and ((result.scores >= 0) & (result.scores <= 1)).all()
    assert result.rationales == [""] * len(frames)
    # One generated token per frame, plus one per forced frame.
    assert result.completion_tokens == len(frames) + int(result.forced.sum())


def test_a_bad_frame_fails_alone(vl_backend, frames, vocab_size):
    labeler = SpatialLabeler(
        vl_backend, max_new_tokens=2, top_logprobs=vocab_size, force_top_logprobs=vocab_size
    )
    bad = [*frames[:2], np.zeros((2, 600, 3), np.uint8)]
    result = labeler.label(bad, QUESTION)
    assert [f.position for f in result.failures] == [2]
    assert "aspect ratio" in result.failures[0].error
    assert np.isfinite(result.scores[:2]).all() and np.isnan(result.scores[2])


def test_requests_hold_the_frames_as_given(labeler, frames):
    requests = labeler.requests(frames, QUESTION)
    assert len(requests) == len(frames)
    assert all(isinstance(r, ChatRequest) for r in requests)
    assert all(np.shares_memory(r.images[0], f) for r, f in zip(requests, frames, strict=True))
