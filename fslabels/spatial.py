"""Spatial labels: an M-LLM judges each candidate frame on its own (Hu et al., CVPR 2025, §3.2).

Per frame the model sees the frame, the question (and options) and is asked to explain briefly
whether the frame helps, then answer True or False. The frame's score is

    p_True / (p_True + p_False)

read from the next-token distribution at the answer slot *after* the explanation, so the
explanation conditions the answer (chain of thought). Probability mass is summed over the
spellings a tokenizer may use (``" True"``, ``"True"``, ``" true"``, ``"TRUE"`` ...).

Two passes, both plain backend calls:

1. `SpatialLabeler.requests` → ``backend.generate``: the explanation and, usually, the answer.
   The answer slot is the first word after the last ``"Answer:"``, else the last True/False
   token of the reply.
2. `SpatialLabeler.force_requests` → ``backend.generate``: for replies that never reached the
   slot (cut by ``max_new_tokens``, or no answer given), the reply so far is prefilled as the
   assistant turn ending in ``"Answer:"`` (``continue_final_message``) and one token is
   generated with ``force_top_logprobs`` alternatives.

`SpatialLabeler.parse` turns both passes into a `SpatialResult`. A frame whose slot holds neither
True nor False among the returned alternatives is a recorded failure (score NaN, raw reply
kept), never a silent 0.5. ``cot=False`` asks for the answer directly (one token), the cheap mode
for large runs.

Example:
    >>> labeler = SpatialLabeler(get_backend("transformers", model=path))  # doctest: +SKIP
    >>> result = labeler.label(candidates.frames, "When does the red circle appear?")  # doctest: +SKIP
    >>> result.scores  # [n] in [0, 1], NaN where the frame failed  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from fslabels._hashing import stable_hash
from fslabels.backends import Backend, ChatRequest, ChatResponse
from fslabels.config import SpatialStageConfig, stage_config, stage_settings

__all__ = [
    "ANSWER_MARKER",
    "COT_INSTRUCTION",
    "DIRECT_INSTRUCTION",
    "FrameFailure",
    "SpatialLabeler",
    "SpatialResult",
    "answer_probability",
    "format_question",
]

# The paper's prompt shape: the frame, the question, "explain, then answer True or False". The
# format line gives the answer a fixed slot, so it is found without guessing.
COT_INSTRUCTION = (
    "Explain briefly whether this frame helps answer the question, then answer True or False.\n"
    'End your reply with "Answer: True" or "Answer: False".'
)
DIRECT_INSTRUCTION = "Does this frame help answer the question? Answer True or False only."
ANSWER_MARKER = "Answer:"
QUESTION_TEMPLATE = "Question: {question}"
OPTIONS_TEMPLATE = "Options:\n{options}"

# Characters around an answer word that do not change it ("**True**", "True.", "'False'").
_DECORATION = " \t\r\n*_`'\".,:;!()[]"
_TRUE, _FALSE = "true", "false"


class FrameFailure(NamedTuple):
    """A frame without a score: its position, why, and the raw reply (kept for inspection)."""

    position: int
    error: str
    raw: str


@dataclass
class SpatialResult:
    """Spatial labels of one question's candidate frames.

    Attributes:
        scores: ``[n]`` float64 in [0, 1]; NaN for failed frames.
        rationales: ``[n]`` the explanation before the answer (``""`` in direct mode or on
            failure).
        failures: the frames without a score.
        forced: ``[n]`` bool, True where the answer came from the forced second pass.
        prompt_tokens, completion_tokens: summed over both passes.
        cost: US dollars for priced backends, else None.
    """

    scores: np.ndarray
    rationales: list[str]
    failures: list[FrameFailure] = field(default_factory=list)
    forced: np.ndarray = field(default=None)  # type: ignore[assignment]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    def __post_init__(self) -> None:
        if self.forced is None:
            self.forced = np.zeros(len(self.scores), dtype=bool)

    @property
    def ok(self) -> bool:
        """True when every frame has a score."""
        return not self.failures


def format_question(question: str, options: Sequence[str] | None = None) -> str:
    """``"Question: ..."`` plus an ``"Options:"`` block, one option per line (as given)."""
    text = QUESTION_TEMPLATE.format(question=question.strip())
    if options:
        text += "\n" + OPTIONS_TEMPLATE.format(options="\n".join(str(o) for o in options))
    return text


def answer_probability(distribution: Mapping[str, float]) -> tuple[float, float]:
    """``(p_True, p_False)``: probability mass of every spelling of True and of False.

    Args:
        distribution: ``{token string: logprob}`` at the answer slot.

    Example:
        >>> p_true, p_false = answer_probability({" True": -0.5, "True": -2.0, " False": -1.5})
        >>> round(p_true / (p_true + p_false), 3)
        0.785
    """
    p_true = p_false = 0.0
    for token, logprob in distribution.items():
        word = _normalise(token)
        if word == _TRUE:
            p_true += math.exp(logprob)
        elif word == _FALSE:
            p_false += math.exp(logprob)
    return p_true, p_false


def _normalise(token: str) -> str:
    return token.strip(_DECORATION).lower()


class _Slot(NamedTuple):
    found: bool  # the reply reached the answer slot
    position: int  # token index of the slot (when found)
    rationale: str  # the reply before the slot's marker / answer word


class SpatialLabeler:
    """Per-frame True/False relevance with the answer's probability as the score.

    Args:
        backend: an image-text backend (transformers, vllm, or openai with a vision model that
            returns log-probabilities).
        config: the stage's settings (`fslabels.config.SpatialStageConfig`: ``cot`` — explain,
            then answer, the paper's way, or answer directly with one token; the explanation's
            ``max_new_tokens``; ``top_logprobs`` alternatives per generated token, which OpenAI
            and vLLM cap at 20 while transformers allows the vocabulary;
            ``force_top_logprobs`` for the forced answer token; ``temperature``). Its backend
            fields are not used: the backend is given.
        instruction: replaces `COT_INSTRUCTION` / `DIRECT_INSTRUCTION`.
        **settings: fields of the config to replace (``cot=False``).

    Raises:
        ValueError: on out-of-range settings.
    """

    def __init__(
        self,
        backend: Backend,
        config: SpatialStageConfig | None = None,
        *,
        instruction: str | None = None,
        **settings: Any,
    ) -> None:
        self.config = stage_config(SpatialStageConfig, config, settings)
        self.backend = backend
        self.cot = self.config.cot
        self.max_new_tokens = self.config.max_new_tokens if self.cot else 1
        self.top_logprobs = self.config.top_logprobs
        self.force_top_logprobs = self.config.force_top_logprobs
        self.temperature = self.config.temperature
        self.instruction = instruction or (COT_INSTRUCTION if self.cot else DIRECT_INSTRUCTION)

    # --- cache keys -------------------------------------------------------------------------

    @property
    def prompts(self) -> dict[str, Any]:
        """The prompt templates in use (what `prompt_hash` hashes; cards show them)."""
        return {
            "question": QUESTION_TEMPLATE,
            "options": OPTIONS_TEMPLATE,
            "instruction": self.instruction,
            "answer_marker": ANSWER_MARKER,
        }

    @property
    def prompt_hash(self) -> str:
        """Hash of the prompt templates in use (16 hex chars of a SHA-256)."""
        return stable_hash(self.prompts)

    def settings(self) -> dict[str, Any]:
        """Everything about this labeler that changes its outputs (for cards and cache keys)."""
        return stage_settings("spatial", self)

    def fingerprint(self) -> str:
        """Hash of `settings`: the cache key part that says how a frame was judged."""
        return stable_hash(self.settings())

    # --- pass 1 -----------------------------------------------------------------------------

    def request(
        self, frame: Any, question: str, options: Sequence[str] | None = None
    ) -> ChatRequest:
        """The first-pass request for one frame (RGB uint8 array or PIL image)."""
        text = f"{format_question(question, options)}\n{self.instruction}"
        messages = [
            {
                "role": "user",
                "content": [{"type": "image", "image": frame}, {"type": "text", "text": text}],
            }
        ]
        return ChatRequest(
            messages,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_logprobs=self.top_logprobs,
        )

    def requests(
        self, frames: Sequence[Any], question: str, options: Sequence[str] | None = None
    ) -> list[ChatRequest]:
        """First-pass requests, one per frame (``frames`` may be an ``[n, H, W, 3]`` array)."""
        return [self.request(frame, question, options) for frame in frames]

    # --- pass 2 -----------------------------------------------------------------------------

    def needs_force(self, response: ChatResponse) -> bool:
        """True when a successful reply did not reach the answer slot."""
        return response.ok and _has_logprobs(response) and not self._slot(response).found

    def force_request(self, request: ChatRequest, response: ChatResponse) -> ChatRequest:
        """The second-pass request: the reply so far prefilled, ending in ``"Answer:"``."""
        return ChatRequest(
            [*request.messages, {"role": "assistant", "content": _prefill(response.text)}],
            max_new_tokens=1,
            temperature=0.0,
            top_logprobs=self.force_top_logprobs,
            continue_final_message=True,
        )

    def force_requests(
        self, requests: Sequence[ChatRequest], responses: Sequence[ChatResponse]
    ) -> dict[int, ChatRequest]:
        """``{position: forced request}`` for the replies that need one (empty if the backend
        cannot prefill an assistant turn; those frames then fail in `parse`)."""
        if len(requests) != len(responses):
            raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
        if not self.backend.supports_prefill:
            return {}
        return {
            i: self.force_request(request, response)
            for i, (request, response) in enumerate(zip(requests, responses, strict=True))
            if self.needs_force(response)
        }

    # --- parsing ----------------------------------------------------------------------------

    def parse(
        self,
        responses: Sequence[ChatResponse],
        forced: Mapping[int, ChatResponse] | None = None,
    ) -> SpatialResult:
        """Scores, rationales and failures from the first-pass replies and the forced ones.

        Args:
            responses: first-pass responses, one per frame, in frame order.
            forced: second-pass responses by frame position (from `force_requests`).

        Returns:
            A `SpatialResult`; never raises for a bad reply.
        """
        forced = dict(forced or {})
        n = len(responses)
        scores = np.full(n, np.nan)
        rationales = [""] * n
        was_forced = np.zeros(n, dtype=bool)
        failures: list[FrameFailure] = []
        every = [*responses, *forced.values()]
        for i, response in enumerate(responses):
            if not response.ok:
                failures.append(FrameFailure(i, f"request failed: {response.error}", response.text))
                continue
            if not _has_logprobs(response):
                failures.append(
                    FrameFailure(i, "the backend returned no log-probabilities", response.text)
                )
                continue
            slot = self._slot(response)
            if slot.found:
                rationales[i] = slot.rationale
                distribution = _slot_distribution(response, slot.position)
                where = "at the answer slot"
            else:
                rationales[i] = _explanation(response.text) if self.cot else ""
                second = forced.get(i)
                if second is None:
                    why = (
                        "the backend cannot prefill a forced answer"
                        if not self.backend.supports_prefill
                        else "the forced answer pass was not run"
                    )
                    failures.append(
                        FrameFailure(i, f"the reply has no answer and {why}", response.text)
                    )
                    continue
                if not second.ok or not second.tokens:
                    failures.append(
                        FrameFailure(
                            i, f"forced answer failed: {second.error or 'no tokens'}", response.text
                        )
                    )
                    continue
                was_forced[i] = True
                distribution = _slot_distribution(second, 0)
                where = "at the forced answer slot"
            p_true, p_false = answer_probability(distribution)
            if p_true + p_false <= 0.0:
                shown = ", ".join(repr(t) for t in list(distribution)[:5])
                raw = response.text + (f"\n[forced] {forced[i].text}" if i in forced else "")
                failures.append(
                    FrameFailure(
                        i,
                        f"neither True nor False among the {len(distribution)} tokens {where} "
                        f"(most likely: {shown})",
                        raw,
                    )
                )
                continue
            scores[i] = p_true / (p_true + p_false)
        costs = [r.cost for r in every if r.cost is not None]
        return SpatialResult(
            scores=scores,
            rationales=rationales,
            failures=failures,
            forced=was_forced,
            prompt_tokens=sum(r.prompt_tokens for r in every),
            completion_tokens=sum(r.completion_tokens for r in every),
            cost=sum(costs) if costs else None,
        )

    def _slot(self, response: ChatResponse) -> _Slot:
        tokens = response.tokens
        if not tokens:
            return _Slot(False, -1, "")
        starts, text = [], ""
        for token in tokens:
            starts.append(len(text))
            text += token
        lowered = text.lower()
        marker = lowered.rfind(ANSWER_MARKER.lower())
        if marker >= 0:
            end = marker + len(ANSWER_MARKER)
            for t, token in enumerate(tokens):
                token_end = starts[t] + len(token)
                if token_end <= end:
                    continue
                if _normalise(text[max(starts[t], end) : token_end]):
                    return _Slot(True, t, text[:marker].strip())
            return _Slot(False, -1, "")  # cut right after the marker
        if self.cot and response.finish_reason == "length":
            # Cut mid-explanation: a "true" so far is part of the reasoning, not the answer.
            return _Slot(False, -1, "")
        for t in range(len(tokens) - 1, -1, -1):
            if _normalise(tokens[t]) in (_TRUE, _FALSE):
                return _Slot(True, t, text[: starts[t]].strip())
        return _Slot(False, -1, "")

    # --- convenience ------------------------------------------------------------------------

    def label(
        self, frames: Sequence[Any], question: str, options: Sequence[str] | None = None
    ) -> SpatialResult:
        """Both passes for one question's frames; the backend batches each pass."""
        requests = self.requests(frames, question, options)
        responses = self.backend.generate(requests)
        force = self.force_requests(requests, responses)
        forced = (
            dict(zip(force, self.backend.generate(list(force.values())), strict=True))
            if force
            else {}
        )
        return self.parse(responses, forced)


def _prefill(reply: str) -> str:
    """The reply up to the answer slot, ending in ``"Answer:"``."""
    marker = reply.lower().rfind(ANSWER_MARKER.lower())
    if marker >= 0 and not _normalise(reply[marker + len(ANSWER_MARKER) :]):
        return reply[: marker + len(ANSWER_MARKER)]
    explanation = reply.rstrip()
    return f"{explanation}\n{ANSWER_MARKER}" if explanation else ANSWER_MARKER


def _explanation(reply: str) -> str:
    """The reasoning of a reply that did not reach its answer (without a dangling marker)."""
    prefill = _prefill(reply)
    return prefill[: -len(ANSWER_MARKER)].strip()


def _has_logprobs(response: ChatResponse) -> bool:
    # An empty reply (end of turn at once) has no tokens but is answerable by forcing.
    return bool(response.tokens) or not response.text


def _slot_distribution(response: ChatResponse, position: int) -> dict[str, float]:
    """The alternatives at ``position`` plus the token actually generated there (which sampling
    may have picked from outside the top-k)."""
    distribution = (
        dict(response.top_logprobs[position]) if position < len(response.top_logprobs) else {}
    )
    if position < len(response.tokens) and position < len(response.token_logprobs):
        distribution.setdefault(response.tokens[position], response.token_logprobs[position])
    return distribution
