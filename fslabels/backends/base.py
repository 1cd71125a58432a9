"""What every labelling backend speaks: chat requests in, one response per request out.

A backend is transport and batching only (distilabel's LLM classes): it never builds prompts and
never parses replies; the labelers (``fslabels.spatial``, ``fslabels.temporal``) do both. The
contract every backend keeps:

- ``generate(requests)`` returns exactly one `ChatResponse` per `ChatRequest`, in order.
- A request that cannot be served (an image the processor rejects, a 400 from an API, retries
  exhausted) gets a response whose ``error`` says why; it never raises for one bad item, so a
  batch of many thousands of frames is never lost to one of them.
- ``fingerprint()`` names everything about the backend that changes outputs (model id, revision,
  dtype ...), never batch size, concurrency or timeouts, so it can key a cache.
- Heavy imports (torch, transformers, openai, vllm) happen in ``load()``.

Messages use the Hugging Face chat format. ``content`` is a string or a list of parts::

    {"type": "text", "text": "Is there a red circle?"}
    {"type": "image", "image": frame}  # RGB uint8 numpy array [H, W, 3] or a PIL image

Example:
    >>> from fslabels.backends import ChatRequest, get_backend
    >>> backend = get_backend("transformers", model="Qwen/Qwen2-VL-7B-Instruct")  # doctest: +SKIP
    >>> request = ChatRequest([{"role": "user", "content": "Say hi."}], max_new_tokens=8)
    >>> backend.generate([request])[0].text  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fslabels._components import NOT_IN_FINGERPRINT, Component, fingerprint_fields

__all__ = [
    "NOT_IN_FINGERPRINT",
    "Backend",
    "BackendConfig",
    "ChatRequest",
    "ChatResponse",
    "iter_images",
    "merge_logprob",
    "message_text",
    "usage_totals",
]

logger = logging.getLogger(__name__)

_ROLES = ("system", "user", "assistant")


@dataclass
class ChatRequest:
    """One chat completion to run.

    Args:
        messages: chat messages (``role`` and ``content``; see the module docstring).
        max_new_tokens: the most tokens to generate (>= 1).
        temperature: 0 for greedy decoding (the default), > 0 to sample.
        top_logprobs: ``None``: no log-probabilities. ``k >= 0``: return each generated token,
            its log-probability and the ``k`` most likely tokens at each step.
        continue_final_message: the last message is an assistant turn to continue (a prefill)
            rather than a finished turn; no new assistant header is added.
        response_format: an OpenAI ``response_format`` (e.g. a JSON schema), for backends that
            support structured output; others ignore it.

    Raises:
        ValueError: on malformed messages or out-of-range parameters.
    """

    messages: list[dict[str, Any]]
    max_new_tokens: int
    temperature: float = 0.0
    top_logprobs: int | None = None
    continue_final_message: bool = False
    response_format: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.messages, list) or not self.messages:
            raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
        for i, message in enumerate(self.messages):
            if (
                not isinstance(message, Mapping)
                or "role" not in message
                or "content" not in message
            ):
                raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content'")
            if message["role"] not in _ROLES:
                raise ValueError(
                    f"messages[{i}]['role'] = {message['role']!r} is not one of {_ROLES}"
                )
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.top_logprobs is not None and (
            not isinstance(self.top_logprobs, int) or self.top_logprobs < 0
        ):
            raise ValueError(
                f"top_logprobs must be None or an integer >= 0, got {self.top_logprobs!r}"
            )
        if self.continue_final_message and self.messages[-1]["role"] != "assistant":
            raise ValueError(
                "continue_final_message=True needs an assistant message last (the prefill), "
                f"got role {self.messages[-1]['role']!r}"
            )

    @property
    def images(self) -> list[Any]:
        """The images of all messages, in order."""
        return list(iter_images(self.messages))


@dataclass
class ChatResponse:
    """The outcome of one `ChatRequest`.

    Attributes:
        text: the generated text (special tokens removed); ``""`` on error.
        top_logprobs: per generated token, ``{token string: logprob}`` of the most likely tokens
            (empty unless the request asked for log-probabilities). Token strings are decoded
            text, e.g. ``" True"``.
        prompt_tokens: tokens in the prompt (images included where the backend counts them).
        completion_tokens: tokens generated.
        error: why the request failed, or ``None``.
        tokens: the generated tokens as strings (with log-probabilities only).
        token_logprobs: the log-probability of each generated token (with log-probabilities only).
        finish_reason: ``"stop"`` (end of turn), ``"length"`` (``max_new_tokens`` reached) or
            ``None`` when unknown.
        cost: US dollars, for priced APIs (see the openai backend's ``prices``).
        attempts: how many times the backend sent the request (remote backends retry).
    """

    text: str = ""
    top_logprobs: list[dict[str, float]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    cost: float | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str, **kwargs: Any) -> ChatResponse:
        """A response recording that the request failed."""
        return cls(error=error, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for a run store); `from_dict` restores it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatResponse:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class BackendConfig:
    """Base of backend configs: plain dataclasses validated in ``__post_init__``.

    Fields whose metadata is `NOT_IN_FINGERPRINT` (batch size, concurrency, timeouts) do not
    change outputs; every other field does and is part of `fingerprint()`.
    """

    def fingerprint(self) -> dict[str, Any]:
        return fingerprint_fields(self)


class Backend(Component):
    """A text or image-text model behind ``generate(list[ChatRequest]) -> list[ChatResponse]``.

    Subclasses declare ``name`` (the registry key) and ``config_class`` (a `BackendConfig`
    dataclass), implement ``_load``, ``_unload`` and ``_generate``; `generate` adds the checks
    every backend shares (one response per request, errors recorded per request). Config
    handling and the load/unload lifecycle are `fslabels._components.Component`'s.

    Args:
        config: a ``config_class`` instance; or pass its fields as keyword arguments.
        **kwargs: config fields (override those of ``config`` when both are given).

    Example:
        >>> with get_backend("transformers", model="/tmp/framesel-tiny/qwen2") as backend:  # doctest: +SKIP
        ...     responses = backend.generate(requests)
    """

    name: ClassVar[str]
    config_class: ClassVar[type[BackendConfig]]
    config_base: ClassVar[type | None] = BackendConfig
    # What the backend can do; labelers adapt their requests (structured output, forced answers).
    # Plain attributes, not ClassVars: a remote backend decides per instance (per endpoint).
    supports_response_format: bool = False
    supports_prefill: bool = True

    def fingerprint(self) -> dict[str, Any]:
        """What about this backend changes outputs: its name and config, minus batch size,
        concurrency, timeouts and other fields marked `NOT_IN_FINGERPRINT`."""
        return {"backend": self.name, **self.config.fingerprint()}

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Run the requests; one response per request, in order. Loads the backend if needed.

        Never raises for a bad request: its response carries the error. An unexpected failure of
        the backend as a whole (a bug) is recorded on every request of the call and logged.
        """
        requests = list(requests)
        if not requests:
            return []
        for i, request in enumerate(requests):
            if not isinstance(request, ChatRequest):
                raise TypeError(f"requests[{i}] is a {type(request).__name__}, not a ChatRequest")
        self.load()
        try:
            responses = self._generate(requests)
        except Exception as err:
            logger.exception("%s backend failed on a call of %d requests", self.name, len(requests))
            return [ChatResponse.failed(f"{type(err).__name__}: {err}") for _ in requests]
        if len(responses) != len(requests):
            raise RuntimeError(
                f"{type(self).__name__} returned {len(responses)} responses for {len(requests)} requests"
            )
        return responses

    @abstractmethod
    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]: ...


def iter_images(messages: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
    """Yield the images of chat messages in order (parts ``{"type": "image", "image": x}``)."""
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            continue
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "image":
                yield part["image"]


def message_text(content: Any) -> str:
    """The text of a message's content (parts joined), for text-only consumers."""
    if isinstance(content, str):
        return content
    return "".join(
        part["text"] for part in content if isinstance(part, Mapping) and part.get("type") == "text"
    )


def merge_logprob(dist: dict[str, float], token: str, logprob: float) -> None:
    """Add a token's log-probability to ``dist``; distinct token ids that decode to the same
    string (possible with byte-level vocabularies) share one entry holding their summed mass."""
    previous = dist.get(token)
    if previous is None:
        dist[token] = float(logprob)
    else:
        high, low = max(previous, logprob), min(previous, logprob)
        dist[token] = float(high + math.log1p(math.exp(low - high)))


def usage_totals(responses: Iterable[ChatResponse]) -> dict[str, Any]:
    """Token usage, dollars and failures summed over responses (per-stage accounting).

    Returns:
        ``{"requests", "failed", "prompt_tokens", "completion_tokens", "cost"}``; ``cost`` is
        ``None`` when no response was priced.
    """
    totals: dict[str, Any] = {
        "requests": 0,
        "failed": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": None,
    }
    for response in responses:
        totals["requests"] += 1
        totals["failed"] += response.error is not None
        totals["prompt_tokens"] += response.prompt_tokens
        totals["completion_tokens"] += response.completion_tokens
        if response.cost is not None:
            totals["cost"] = (totals["cost"] or 0.0) + response.cost
    return totals
