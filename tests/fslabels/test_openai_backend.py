"""The openai backend: the wire format (pure functions, always tested) and its HTTP behaviour.

The HTTP tests run the real ``openai`` client against a small standard-library HTTP server on
127.0.0.1 that STANDS IN FOR THE OPENAI SERVICE, which cannot run here (no internet). It speaks
the subset of ``POST /v1/chat/completions`` the backend uses and follows a script of replies
(429, 500, slow replies, logprobs), so retries, backoff bounds, timeouts and logprobs parsing are
exercised on real HTTP. Against a real OpenAI-compatible engine, the vLLM CI stage drives this
backend through ``vllm``'s own server. Those tests are skipped when the ``openai`` package (the
``framesel[openai]`` extra) is not installed.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fslabels.backends import ChatRequest, get_backend
from fslabels.backends.openai_backend import (
    OpenAIConfig,
    completion_to_response,
    request_payload,
)

needs_openai = pytest.mark.skipif(
    importlib.util.find_spec("openai") is None,
    reason="the openai package is not installed (pip install 'framesel[openai]')",
)

FRAME = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


def _completion(text="Answer: True", logprobs=True, usage=(120, 3)) -> dict:
    content = None
    if logprobs:
        content = [
            {
                "token": " True",
                "logprob": -0.2,
                "bytes": None,
                "top_logprobs": [
                    {"token": " True", "logprob": -0.2, "bytes": None},
                    {"token": " False", "logprob": -1.8, "bytes": None},
                    {"token": "True", "logprob": -3.0, "bytes": None},
                ],
            }
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": content} if content is not None else None,
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


# --- wire format (no network, no openai package) ----------------------------------------------


def test_payload_carries_images_logprobs_prefill_and_schema():
    config = OpenAIConfig(model="m", extra_body={"top_k": 1}, seed=3, image_detail="low")
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": FRAME}, {"type": "text", "text": "Q?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "It shows\nAnswer:"}]},
    ]
    request = ChatRequest(
        messages,
        max_new_tokens=1,
        top_logprobs=50,
        continue_final_message=True,
        response_format={"type": "json_object"},
    )
    payload = request_payload(request, config)
    image, text = payload["messages"][0]["content"]
    assert text == {"type": "text", "text": "Q?"}
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and image["image_url"]["detail"] == "low"
    from PIL import Image

    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, FRAME)  # PNG: the server sees the exact pixels
    assert payload["messages"][1] == {"role": "assistant", "content": "It shows\nAnswer:"}
    assert payload["max_tokens"] == 1 and payload["seed"] == 3
    assert payload["logprobs"] is True and payload["top_logprobs"] == 20  # clamped to the cap
    assert payload["response_format"] == {"type": "json_object"}
    assert payload["extra_body"] == {
        "top_k": 1,
        "continue_final_message": True,
        "add_generation_prompt": False,
    }
    plain = request_payload(
        ChatRequest([{"role": "user", "content": "hi"}], max_new_tokens=5),
        OpenAIConfig(model="m", structured_output=False, max_tokens_param="max_completion_tokens"),
    )
    assert plain == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 5,
        "temperature": 0.0,
    }


def test_completion_json_to_response_with_cost():
    response = completion_to_response(_completion(), price=(0.15, 0.60))
    assert response.text == "Answer: True" and response.finish_reason == "stop"
    assert response.tokens == [" True"] and response.token_logprobs == [-0.2]
    assert response.top_logprobs == [{" True": -0.2, " False": -1.8, "True": -3.0}]
    assert (response.prompt_tokens, response.completion_tokens) == (120, 3)
    assert response.cost == pytest.approx((120 * 0.15 + 3 * 0.60) / 1e6)
    bare = completion_to_response(_completion(logprobs=False))
    assert bare.tokens == [] and bare.cost is None
    assert completion_to_response({"choices": []}).error == "the endpoint returned no choices"


def test_config_fingerprint_and_prices(monkeypatch):
    local = get_backend("openai", model="qwen", base_url="http://127.0.0.1:1/v1", concurrency=64)
    remote = get_backend("openai", model="qwen", base_url="http://gpu-box:8000/v1")
    assert local.fingerprint() == remote.fingerprint()  # the endpoint's address is not an output
    assert "base_url" not in local.fingerprint() and "concurrency" not in local.fingerprint()
    assert (
        local.supports_prefill and not get_backend("openai", model="gpt-4o-mini").supports_prefill
    )
    assert OpenAIConfig(model="gpt-4o-mini").price() == (0.15, 0.60)
    assert OpenAIConfig(model="gpt-4o-mini", base_url="http://x/v1").price() is None
    assert OpenAIConfig(model="x", prices={"x": (1.0, 2.0)}).price() == (1.0, 2.0)
    with pytest.raises(ValueError, match="concurrency"):
        OpenAIConfig(model="x", concurrency=0)


# --- HTTP behaviour against the stand-in server ---------------------------------------------


class _StandIn:
    """Scripted replies for POST /v1/chat/completions; records every request body."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict, float]] = []
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stand_in.lock:
                    stand_in.bodies.append(body)
                    status, payload, delay = (
                        stand_in.script.pop(0) if stand_in.script else (200, None, 0.0)
                    )
                if payload is None:  # echo the last user text, so order can be checked
                    text = body["messages"][-1]["content"]
                    payload = _completion(text=text if isinstance(text, str) else "?")
                time.sleep(delay)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    server = _StandIn()
    yield server
    server.close()


def _backend(stand_in, **config):
    defaults = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0, "max_retries": 3}
    return get_backend(
        "openai", model="gpt-4o-mini", base_url=stand_in.url, **{**defaults, **config}
    )


def _ask(text: str = "Q?") -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], max_new_tokens=4, top_logprobs=2)


def _error(status: int) -> dict:
    return {"error": {"message": f"status {status}", "type": "server_error", "code": None}}


@needs_openai
def test_429_and_500_are_retried_then_logprobs_parsed(stand_in):
    stand_in.script = [(429, _error(429), 0.0), (500, _error(500), 0.0), (200, _completion(), 0.0)]
    with _backend(stand_in) as backend:
        (response,) = backend.generate([_ask()])
    assert response.error is None and response.attempts == 3 and len(stand_in.bodies) == 3
    assert response.top_logprobs[0][" True"] == pytest.approx(-0.2)
    assert stand_in.bodies[0]["logprobs"] is True and stand_in.bodies[0]["top_logprobs"] == 2


@needs_openai
def test_retries_stop_at_the_bound(stand_in):
    stand_in.script = [(503, _error(503), 0.0)] * 10
    with _backend(stand_in, max_retries=2) as backend:
        (response,) = backend.generate([_ask()])
    assert response.attempts == 3 and len(stand_in.bodies) == 3
    assert response.error.startswith("HTTP 503")


@needs_openai
def test_client_errors_are_not_retried(stand_in):
    stand_in.script = [(400, _error(400), 0.0)]
    with _backend(stand_in) as backend:
        (response,) = backend.generate([_ask()])
    assert response.attempts == 1 and response.error.startswith("HTTP 400")


@needs_openai
def test_timeouts_are_retried_and_bounded(stand_in):
    stand_in.script = [(200, _completion(), 1.0), (200, _completion(), 1.0)]
    with _backend(stand_in, timeout=0.2, max_retries=1) as backend:
        started = time.monotonic()
        (response,) = backend.generate([_ask()])
    assert time.monotonic() - started < 5
    assert response.attempts == 2 and "Timeout" in response.error


@needs_openai
def test_concurrent_requests_keep_their_order(stand_in):
    with _backend(stand_in, concurrency=4) as backend:
        responses = backend.generate([_ask(f"q{i}") for i in range(12)])
    assert [r.text for r in responses] == [f"q{i}" for i in range(12)]
    assert sum(r.prompt_tokens for r in responses) == 12 * 120
