"""The backend registry, the request/response contract, and the transformers backend on the real
tiny models (no mocks): batching, log-probabilities, prefill, per-request errors."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from fslabels.backends import (
    BACKENDS,
    Backend,
    BackendConfig,
    ChatRequest,
    ChatResponse,
    backend_class,
    get_backend,
    usage_totals,
)


def _user(text: str, image=None) -> list[dict]:
    content = ([{"type": "image", "image": image}] if image is not None else []) + [
        {"type": "text", "text": text}
    ]
    return [{"role": "user", "content": content}]


QUESTIONS = (
    "Is there a red circle?",
    "What colour is the square in the middle of the frame?",
    "Does the man open the door?",
    "How many times does the blue ball appear near the end of the video?",
    "Is it dark?",
)


# --- registry and contract ------------------------------------------------------------------


def test_registry_names_known_backends_on_a_typo():
    assert set(BACKENDS) >= {"transformers", "vllm", "openai"}
    with pytest.raises(ValueError) as info:
        get_backend("transfomers", model="x")
    message = str(info.value)
    assert "openai, transformers, vllm" in message and "Did you mean 'transformers'" in message


def test_every_registered_backend_imports_without_its_engine():
    for name in BACKENDS:
        cls = backend_class(name)
        assert issubclass(cls, Backend) and cls.name == name


def test_importing_fslabels_stays_light():
    code = (
        "import sys, fslabels, fslabels.backends, fslabels.manifest, fslabels.spatial, "
        "fslabels.temporal, fslabels.fusion\n"
        "for name in ('fslabels.backends.transformers_backend', 'fslabels.backends.openai_backend', "
        "'fslabels.backends.vllm_backend'):\n"
        "    __import__(name)\n"
        "print(*[m in sys.modules for m in ('torch', 'transformers', 'openai', 'vllm')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 4


@pytest.mark.parametrize(
    ("module", "backend", "extra"),
    [("vllm", "vllm", "vllm"), ("openai", "openai", "openai")],
)
def test_missing_engine_names_its_extra(module, backend, extra, monkeypatch):
    # Simulate a machine without the engine, whether or not it is installed here.
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    instance = get_backend(backend, model="some/model")
    with pytest.raises(ImportError, match=rf"pip install 'framesel\[{extra}\]'"):
        instance.load()
    assert not instance.is_loaded


def test_subclasses_must_declare_name_and_config():
    with pytest.raises(TypeError, match="name"):

        class Nameless(Backend):
            config_class = BackendConfig

            def _load(self): ...
            def _unload(self): ...
            def _generate(self, requests): ...

    with pytest.raises(TypeError, match="config_class"):

        class NoConfig(Backend):
            name = "no-config"

            def _load(self): ...
            def _unload(self): ...
            def _generate(self, requests): ...


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"messages": [], "max_new_tokens": 4}, "non-empty"),
        ({"messages": [{"role": "robot", "content": "x"}], "max_new_tokens": 4}, "role"),
        ({"messages": [{"role": "user"}], "max_new_tokens": 4}, "'content'"),
        ({"messages": [{"role": "user", "content": "x"}], "max_new_tokens": 0}, "max_new_tokens"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "max_new_tokens": 4,
                "temperature": -1,
            },
            "temperature",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "max_new_tokens": 4,
                "top_logprobs": -2,
            },
            "top_logprobs",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "max_new_tokens": 4,
                "continue_final_message": True,
            },
            "assistant message last",
        ),
    ],
)
def test_invalid_requests_say_what_is_wrong(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChatRequest(**kwargs)


def test_response_round_trips_through_json_and_usage_adds_up():
    import json

    a = ChatResponse(
        text="hi",
        top_logprobs=[{" hi": -0.1}],
        tokens=[" hi"],
        token_logprobs=[-0.1],
        prompt_tokens=7,
        completion_tokens=2,
        cost=0.5,
    )
    b = ChatResponse.failed("HTTP 500", attempts=3)
    assert ChatResponse.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert usage_totals([a, b]) == {
        "requests": 2,
        "failed": 1,
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "cost": 0.5,
    }


def test_fingerprint_has_what_changes_outputs_only(tiny_models):
    path = str(tiny_models["qwen2"])
    small = get_backend("transformers", model=path, batch_size=1, device="cpu")
    large = get_backend("transformers", model=path, batch_size=64, sort_by_length=False)
    assert small.fingerprint() == large.fingerprint()
    assert small.fingerprint()["model"] == path and small.fingerprint()["backend"] == "transformers"
    assert "batch_size" not in small.fingerprint()
    other = get_backend("transformers", model=path, dtype="bfloat16")
    assert other.fingerprint() != small.fingerprint()
    with pytest.raises(ValueError, match="dtype"):
        get_backend("transformers", model=path, dtype="float8")


# --- the transformers backend ---------------------------------------------------------------


def _text_requests(top_logprobs=5, max_new_tokens=6) -> list[ChatRequest]:
    return [
        ChatRequest(_user(q), max_new_tokens=max_new_tokens, top_logprobs=top_logprobs)
        for q in QUESTIONS
    ]


def _image_requests(frames, top_logprobs=5, max_new_tokens=6) -> list[ChatRequest]:
    return [
        ChatRequest(_user(q, frame), max_new_tokens=max_new_tokens, top_logprobs=top_logprobs)
        for q, frame in zip(QUESTIONS, frames, strict=False)
    ]


def _assert_same(batched: list[ChatResponse], single: list[ChatResponse]) -> None:
    for a, b in zip(batched, single, strict=True):
        assert a.error is None and b.error is None
        assert a.tokens == b.tokens and a.text == b.text
        assert a.prompt_tokens == b.prompt_tokens
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
        for da, db in zip(a.top_logprobs, b.top_logprobs, strict=True):
            assert list(da) == list(db)
            np.testing.assert_allclose(list(da.values()), list(db.values()), atol=1e-4)


@pytest.mark.parametrize("which", ["text", "image"])
def test_batched_generation_equals_one_at_a_time(which, text_backend, vl_backend, frames):
    backend = text_backend if which == "text" else vl_backend
    requests = _text_requests() if which == "text" else _image_requests(frames)
    batched = backend.generate(requests)  # batch_size 4 with left padding: two batches
    single = [backend.generate([r])[0] for r in requests]
    _assert_same(batched, single)
    assert all(r.completion_tokens == 6 and r.finish_reason == "length" for r in batched)


def test_logprobs_are_a_distribution_and_match_a_manual_forward_pass(vl_backend, frames):
    messages = [
        *_user("Is there a red circle?", frames[0]),
        {"role": "assistant", "content": "Answer:"},
    ]
    request = ChatRequest(messages, max_new_tokens=3, top_logprobs=10, continue_final_message=True)
    response = vl_backend.generate([request])[0]
    assert response.error is None and len(response.top_logprobs) == 3
    for step, chosen in zip(response.top_logprobs, response.token_logprobs, strict=True):
        assert len(step) <= 10
        assert sum(math.exp(v) for v in step.values()) <= 1.0 + 1e-6
        assert chosen <= max(step.values()) + 1e-6  # greedy picks the most likely token

    processor, model = vl_backend.processor, vl_backend.model
    text = processor.apply_chat_template(
        [messages[0] | {"content": [{"type": "image"}, messages[0]["content"][1]]}, messages[1]],
        tokenize=False,
        continue_final_message=True,
    )
    assert text.endswith("<|im_start|>assistant\nAnswer:")
    from PIL import Image

    inputs = processor(images=[Image.fromarray(frames[0])], text=[text], return_tensors="pt")
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**inputs).logits[0, -1].float(), dim=-1)
    values, ids = logprobs.topk(10)
    expected: dict[str, float] = {}
    for token_id, value in zip(ids.tolist(), values.tolist(), strict=True):
        token = processor.tokenizer.decode([token_id])
        expected[token] = (
            float(np.logaddexp(expected[token], value)) if token in expected else value
        )
    assert set(response.top_logprobs[0]) == set(expected)
    for token, value in expected.items():
        assert response.top_logprobs[0][token] == pytest.approx(value, abs=1e-4)


def test_each_request_keeps_its_own_max_new_tokens(text_backend):
    requests = [
        ChatRequest(_user(q), max_new_tokens=n)
        for q, n in zip(QUESTIONS, (1, 5, 2, 5, 3), strict=True)
    ]
    responses = text_backend.generate(requests)
    assert [r.completion_tokens for r in responses] == [1, 5, 2, 5, 3]
    # Without top_logprobs no log-probabilities are computed or returned.
    assert all(r.tokens == [] and r.top_logprobs == [] for r in responses)


def test_bad_requests_fail_alone(vl_backend, text_backend, frames):
    good = _image_requests(frames[:2], max_new_tokens=4)
    bad_dtype = ChatRequest(_user("x", frames[0].astype(np.float32)), max_new_tokens=4)
    too_thin = ChatRequest(_user("x", np.zeros((2, 600, 3), np.uint8)), max_new_tokens=4)
    responses = vl_backend.generate([good[0], bad_dtype, too_thin, good[1]])
    assert "uint8" in responses[1].error
    assert "aspect ratio" in responses[2].error  # rejected by the Qwen2-VL image processor
    _assert_same([responses[0], responses[3]], vl_backend.generate(good))

    mixed = text_backend.generate(
        [ChatRequest(_user("x", frames[0]), max_new_tokens=2), _text_requests()[0]]
    )
    assert "text-only model" in mixed[0].error and mixed[1].error is None


def test_sampling_is_seeded(text_backend):
    request = ChatRequest(_user("Describe the video."), max_new_tokens=6, temperature=1.0)
    first, second = text_backend.generate([request]), text_backend.generate([request])
    assert first[0].text == second[0].text and first[0].completion_tokens == 6


def test_empty_call_returns_nothing(text_backend):
    assert text_backend.generate([]) == []
