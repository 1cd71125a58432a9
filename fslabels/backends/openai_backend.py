"""Any OpenAI-compatible chat endpoint: the OpenAI API, or ``vllm serve`` on a GPU machine.

- Log-probabilities (``logprobs`` / ``top_logprobs``) come back per generated token, as spatial
  labels need them.
- Images go as base64 ``data:`` URLs (PNG by default: lossless, so a frame is judged on the same
  pixels as in-process).
- ``continue_final_message`` (the forced answer's assistant prefill) is vLLM's extension, sent in
  ``extra_body`` with ``add_generation_prompt=False``; the OpenAI API has no prefill, so there
  (``prefill=False``) the spatial labeler records a failure instead of forcing.
- ``response_format`` (JSON schema) is passed through where ``structured_output`` is on.
- 429s, 408/409, 5xx, timeouts and connection errors are retried with exponential backoff
  (honouring ``Retry-After``), at most ``max_retries`` times; the client's own retries are off so
  the bound is ours. A request that still fails gets a response with ``error`` set.
- Requests run in ``concurrency`` threads; order is kept.
- Usage (prompt/completion tokens) and, with a price table, US dollars per response.

Install with ``pip install 'framesel[openai]'``; the API key is read from the environment variable
named by ``api_key_env`` (never from a config file).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fsmodel._imports import require

from .base import (
    NOT_IN_FINGERPRINT,
    Backend,
    BackendConfig,
    ChatRequest,
    ChatResponse,
    merge_logprob,
    message_text,
)
from .images import to_data_url

__all__ = [
    "KNOWN_PRICES",
    "OpenAIBackend",
    "OpenAIConfig",
    "completion_to_response",
    "openai_message",
    "request_payload",
]

logger = logging.getLogger(__name__)

# USD per 1M (prompt, completion) tokens on the OpenAI API, used when `prices` is not given and
# no base_url is set. Prices change: pass `prices` for accounting you rely on.
KNOWN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
}

RETRY_STATUS = frozenset({408, 409, 429})


@dataclass
class OpenAIConfig(BackendConfig):
    """Config of the openai backend.

    Args:
        model: the served model's name (``"gpt-4o-mini"``, or the ``--model`` of a vLLM server).
        base_url: the endpoint (``http://host:8000/v1``); ``None``: the OpenAI API (or
            ``OPENAI_BASE_URL``). Not in the fingerprint: the same model served elsewhere gives
            the same labels.
        api_key_env: environment variable holding the API key (local servers accept any).
        extra_body: extra JSON fields for every request (vLLM sampling extensions such as
            ``{"top_k": 1}``).
        seed: sent as ``seed`` (best effort on the OpenAI API).
        prefill: whether the server continues an assistant prefill (vLLM's
            ``continue_final_message``). ``None``: True for a custom ``base_url``, False for the
            OpenAI API.
        structured_output: whether the server accepts a JSON-schema ``response_format``.
        image_format: ``"png"`` (lossless) or ``"jpeg"`` / ``"webp"`` (smaller uploads).
        image_detail: OpenAI's ``detail`` (``"low"``, ``"high"``, ``"auto"``) or None.
        max_top_logprobs: the server's cap on ``top_logprobs`` (20 on OpenAI and vLLM);
            larger requests are clamped to it.
        max_tokens_param: ``"max_tokens"`` (widest support) or ``"max_completion_tokens"``.
        prices: ``{model: (usd per 1M prompt tokens, usd per 1M completion tokens)}``.
        max_retries: retries after the first try (429, 5xx, timeouts, connection errors).
        backoff: first retry delay in seconds; doubles per retry, with jitter.
        max_backoff: cap of one delay (also of a server's ``Retry-After``).
        timeout: seconds per HTTP request.
        concurrency: requests in flight at once.
    """

    model: str
    base_url: str | None = field(default=None, metadata=NOT_IN_FINGERPRINT)
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=NOT_IN_FINGERPRINT)
    extra_body: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    prefill: bool | None = field(default=None, metadata=NOT_IN_FINGERPRINT)
    structured_output: bool = field(default=True, metadata=NOT_IN_FINGERPRINT)
    image_format: str = "png"
    image_detail: str | None = None
    max_top_logprobs: int = 20
    max_tokens_param: str = field(default="max_tokens", metadata=NOT_IN_FINGERPRINT)
    prices: dict[str, tuple[float, float]] | None = field(default=None, metadata=NOT_IN_FINGERPRINT)
    max_retries: int = field(default=5, metadata=NOT_IN_FINGERPRINT)
    backoff: float = field(default=1.0, metadata=NOT_IN_FINGERPRINT)
    max_backoff: float = field(default=60.0, metadata=NOT_IN_FINGERPRINT)
    timeout: float = field(default=120.0, metadata=NOT_IN_FINGERPRINT)
    concurrency: int = field(default=8, metadata=NOT_IN_FINGERPRINT)

    def __post_init__(self) -> None:
        if self.max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ValueError(
                "max_tokens_param must be 'max_tokens' or 'max_completion_tokens', "
                f"got {self.max_tokens_param!r}"
            )
        for name in ("max_retries", "max_top_logprobs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.backoff < 0 or self.max_backoff < 0 or self.timeout <= 0:
            raise ValueError("backoff and max_backoff must be >= 0 and timeout > 0")

    def price(self) -> tuple[float, float] | None:
        """USD per 1M (prompt, completion) tokens for this model, if known."""
        if self.prices is not None:
            return self.prices.get(self.model)
        return KNOWN_PRICES.get(self.model) if self.base_url is None else None


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible endpoint (see the module docstring).

    Example:
        >>> backend = OpenAIBackend(model="Qwen/Qwen2-VL-7B-Instruct", base_url="http://gpu:8000/v1")  # doctest: +SKIP
        >>> backend.generate(requests)  # doctest: +SKIP
    """

    name = "openai"
    config_class = OpenAIConfig

    config: OpenAIConfig

    def __init__(self, config: OpenAIConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        prefill = self.config.prefill
        self.supports_prefill = self.config.base_url is not None if prefill is None else prefill
        self.supports_response_format = self.config.structured_output
        self._client: Any = None
        self._openai: Any = None
        self._rng = random.Random(0)
        self._rng_lock = threading.Lock()

    def _load(self) -> None:
        openai = require("openai", extra="openai", purpose="the openai labelling backend")
        key = os.environ.get(self.config.api_key_env)
        if not key:
            if self.config.base_url is None and not os.environ.get("OPENAI_BASE_URL"):
                raise RuntimeError(
                    f"the openai backend needs an API key in ${self.config.api_key_env} "
                    "(or a base_url of a local server, which accepts any key)"
                )
            key = "EMPTY"
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=key,
            base_url=self.config.base_url,
            timeout=self.config.timeout,
            max_retries=0,  # retries are ours, bounded and logged
        )

    def _unload(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        workers = min(self.config.concurrency, len(requests))
        if workers == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(workers, thread_name_prefix="framesel-openai") as pool:
            return list(pool.map(self._one, requests))

    def _one(self, request: ChatRequest) -> ChatResponse:
        if request.continue_final_message and not self.supports_prefill:
            return ChatResponse.failed(
                "this endpoint cannot continue an assistant prefill (continue_final_message); "
                "set prefill=True for vLLM servers"
            )
        try:
            payload = request_payload(request, self.config)
        except Exception as err:
            return ChatResponse.failed(f"invalid request: {type(err).__name__}: {err}")
        attempt = 0
        while True:
            attempt += 1
            try:
                completion = self._client.chat.completions.create(**payload)
            except Exception as err:
                delay = self._retry_delay(err, attempt)
                if delay is None:
                    return ChatResponse.failed(_describe(err), attempts=attempt)
                logger.info("openai: %s; retry %d in %.2f s", _describe(err), attempt, delay)
                time.sleep(delay)
                continue
            data = _as_dict(completion)
            response = completion_to_response(data, self.config.price())
            response.attempts = attempt
            return response

    def _retry_delay(self, err: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the error is final (or the bound is hit)."""
        if attempt > self.config.max_retries:
            return None
        status = getattr(err, "status_code", None)
        transient = isinstance(err, self._openai.APIConnectionError) or (
            isinstance(status, int) and (status in RETRY_STATUS or status >= 500)
        )
        if not transient:
            return None
        with self._rng_lock:
            jitter = 1.0 + 0.25 * self._rng.random()
        delay = self.config.backoff * 2 ** (attempt - 1) * jitter
        retry_after = _retry_after(err)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.config.max_backoff)


def request_payload(request: ChatRequest, config: OpenAIConfig) -> dict[str, Any]:
    """The keyword arguments of ``client.chat.completions.create`` for one request."""
    messages = [
        openai_message(m, config.image_format, config.image_detail) for m in request.messages
    ]
    payload: dict[str, Any] = {
        "model": config.model,
        "messages": messages,
        config.max_tokens_param: request.max_new_tokens,
        "temperature": request.temperature,
    }
    if config.seed is not None:
        payload["seed"] = config.seed
    if request.top_logprobs is not None:
        payload["logprobs"] = True
        payload["top_logprobs"] = min(request.top_logprobs, config.max_top_logprobs)
    if request.response_format is not None and config.structured_output:
        payload["response_format"] = request.response_format
    extra = dict(config.extra_body)
    if request.continue_final_message:
        extra.update(continue_final_message=True, add_generation_prompt=False)
    if extra:
        payload["extra_body"] = extra
    return payload


def openai_message(
    message: Mapping[str, Any], image_format: str = "png", image_detail: str | None = None
) -> dict[str, Any]:
    """A chat message in the OpenAI wire format: image parts become ``image_url`` parts with
    base64 data URLs; assistant turns become plain text."""
    content = message["content"]
    if isinstance(content, str) or message["role"] == "assistant":
        return {"role": message["role"], "content": message_text(content)}
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image":
            image_url: dict[str, Any] = {"url": to_data_url(part["image"], image_format)}
            if image_detail:
                image_url["detail"] = image_detail
            parts.append({"type": "image_url", "image_url": image_url})
        else:
            raise ValueError(f"unsupported content part type {kind!r}")
    return {"role": message["role"], "content": parts}


def completion_to_response(
    data: Mapping[str, Any], price: tuple[float, float] | None = None
) -> ChatResponse:
    """A `ChatResponse` from a chat completion's JSON (``ChatCompletion.model_dump()``).

    Args:
        data: the completion as a dict (what the endpoint returned).
        price: USD per 1M (prompt, completion) tokens, for ``cost``.
    """
    choices = data.get("choices") or []
    if not choices:
        return ChatResponse.failed("the endpoint returned no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    response = ChatResponse(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason"),
    )
    logprobs = (choice.get("logprobs") or {}).get("content") or []
    for item in logprobs:
        response.tokens.append(item.get("token", ""))
        response.token_logprobs.append(float(item.get("logprob", float("-inf"))))
        dist: dict[str, float] = {}
        for alternative in item.get("top_logprobs") or []:
            merge_logprob(dist, alternative.get("token", ""), float(alternative["logprob"]))
        response.top_logprobs.append(dist)
    usage = data.get("usage") or {}
    response.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    response.completion_tokens = int(usage.get("completion_tokens") or 0)
    if price is not None:
        response.cost = (
            response.prompt_tokens * price[0] + response.completion_tokens * price[1]
        ) / 1e6
    return response


def _as_dict(completion: Any) -> Mapping[str, Any]:
    """The completion's JSON as a dict, from the openai client's pydantic model (or a dict)."""
    if isinstance(completion, Mapping):
        return completion
    for method in ("to_dict", "model_dump"):
        if hasattr(completion, method):
            return getattr(completion, method)()
    raise TypeError(f"cannot read a {type(completion).__name__} as a chat completion")


def _retry_after(err: Exception) -> float | None:
    headers = getattr(getattr(err, "response", None), "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            return None  # an HTTP date: fall back to our own backoff
    return None


def _describe(err: Exception) -> str:
    status = getattr(err, "status_code", None)
    prefix = f"HTTP {status}: " if status else ""
    return f"{prefix}{type(err).__name__}: {err}"
