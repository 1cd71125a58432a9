"""Temporal labels: captions of every candidate frame, then an LLM picks the helpful frames.

Spatial labels judge frames one at a time; temporal labels see the whole video through its
captions, so they can credit frames whose use depends on order ("what happens after ...").

1. `Captioner`: an M-LLM writes one caption per candidate frame. Captions do not depend on the
   question, so they are computed once per video (cache them by video and
   `Captioner.fingerprint`) and shared by all its questions.
2. `TemporalLabeler`: an LLM reads the numbered captions (``Frame 3 (1.5 s): ...``) and the
   question and replies with JSON, ``{"frames": [3, 17]}``. Structured output (a JSON schema
   ``response_format``) is requested where the backend supports it. `parse_frame_indices`
   reads replies robustly (code fences, text around the JSON, ranges such as ``"3-5"``,
   1-based numbering, out-of-range and duplicate indices dropped with a note); a reply that
   cannot be read is retried with a repair turn, up to ``max_attempts``, and every raw reply is
   kept.

Scores are 1 for the chosen frames and 0 for the others (NaN everywhere when the sample failed).

Example:
    >>> captions = Captioner(vlm_backend).caption(candidates.frames).captions  # doctest: +SKIP
    >>> result = TemporalLabeler(llm_backend).label(captions, candidates.timestamps, question)  # doctest: +SKIP
    >>> result.frames, result.scores  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fslabels._hashing import stable_hash
from fslabels.backends import Backend, ChatRequest, ChatResponse
from fslabels.config import CaptionStageConfig, TemporalStageConfig, stage_config, stage_settings
from fslabels.spatial import FrameFailure, format_question

__all__ = [
    "CAPTION_PROMPT",
    "FRAMES_SCHEMA",
    "CaptionResult",
    "Captioner",
    "FrameParseError",
    "ParsedFrames",
    "TemporalJob",
    "TemporalLabeler",
    "TemporalResult",
    "parse_frame_indices",
]

CAPTION_PROMPT = "Describe this frame in one sentence."

SELECTION_INTRO = "Here are captions of {n} frames sampled from a video, in time order:"
CAPTION_LINE = "Frame {index} ({time:.1f} s): {caption}"
SELECTION_INSTRUCTION = (
    "Which frames help answer the question? Reply with JSON only, in the form "
    '{{"frames": [3, 17]}}, using the frame numbers above (0 to {last}). '
    "Use an empty list if no frame helps."
)
REPAIR_INSTRUCTION = (
    "Your reply could not be read ({error}). Reply again with JSON only, in the form "
    '{{"frames": [3, 17]}}, using the frame numbers 0 to {last}.'
)
MISSING_CAPTION = "(no caption)"

# Structured output: the JSON schema an OpenAI-compatible server enforces when it supports it.
FRAMES_SCHEMA: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "helpful_frames",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"frames": {"type": "array", "items": {"type": "integer"}}},
            "required": ["frames"],
            "additionalProperties": False,
        },
    },
}

# Keys a reply may use for the list (models paraphrase the one asked for).
_FRAME_KEYS = (
    "frames",
    "frame_indices",
    "indices",
    "helpful_frames",
    "relevant_frames",
    "selected_frames",
    "frame_ids",
    "frame_numbers",
)
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_ONE_BASED = re.compile(r"\b(?:1|one)[- ]?(?:based|indexed)\b", re.IGNORECASE)
_RANGE = re.compile(r"^\s*(?:frames?\s*)?(-?\d+)\s*(?:-|–|\.\.|to|through)\s*(-?\d+)\s*$", re.I)
_SINGLE = re.compile(r"^\s*(?:frame\s*)?#?\s*(-?\d+)\s*$", re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
# Closing brackets tried per opening one when reading Python-style literals (bounds the work).
_MAX_LITERAL_TRIES = 20


# --- captions -------------------------------------------------------------------------------


@dataclass
class CaptionResult:
    """Captions of one video's candidate frames.

    Attributes:
        captions: ``[n]`` one-line captions; ``""`` for failed frames.
        failures: frames without a caption (position, error, raw reply).
        prompt_tokens, completion_tokens, cost: usage of the call.
    """

    captions: list[str]
    failures: list[FrameFailure] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


class Captioner:
    """One caption per candidate frame (question-independent: cache per video).

    Args:
        backend: an image-text backend.
        config: the stage's settings (`fslabels.config.CaptionStageConfig`: the ``prompt`` shown
            with each frame, default `CAPTION_PROMPT`; ``max_new_tokens``; ``temperature``). Its
            backend fields are not used: the backend is given.
        **settings: fields of the config to replace (``max_new_tokens=6``).
    """

    def __init__(
        self, backend: Backend, config: CaptionStageConfig | None = None, **settings: Any
    ) -> None:
        self.config = stage_config(CaptionStageConfig, config, settings)
        self.backend = backend
        self.prompt = self.config.prompt or CAPTION_PROMPT
        self.max_new_tokens = self.config.max_new_tokens
        self.temperature = self.config.temperature

    @property
    def prompts(self) -> dict[str, Any]:
        """The prompt templates in use (what `prompt_hash` hashes; cards show them)."""
        return {"caption_prompt": self.prompt}

    @property
    def prompt_hash(self) -> str:
        return stable_hash(self.prompts)

    def settings(self) -> dict[str, Any]:
        return stage_settings("captions", self)

    def fingerprint(self) -> str:
        return stable_hash(self.settings())

    def requests(self, frames: Sequence[Any]) -> list[ChatRequest]:
        """One request per frame."""
        return [
            ChatRequest(
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "image": frame},
                            {"type": "text", "text": self.prompt},
                        ],
                    }
                ],
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
            )
            for frame in frames
        ]

    def parse(self, responses: Sequence[ChatResponse]) -> CaptionResult:
        """Captions (one line each) and failures; never raises for a bad reply."""
        captions, failures = [], []
        for i, response in enumerate(responses):
            caption = " ".join(response.text.split())
            if not response.ok:
                failures.append(FrameFailure(i, f"request failed: {response.error}", response.text))
                caption = ""
            elif not caption:
                failures.append(FrameFailure(i, "empty caption", response.text))
            captions.append(caption)
        costs = [r.cost for r in responses if r.cost is not None]
        return CaptionResult(
            captions=captions,
            failures=failures,
            prompt_tokens=sum(r.prompt_tokens for r in responses),
            completion_tokens=sum(r.completion_tokens for r in responses),
            cost=sum(costs) if costs else None,
        )

    def caption(self, frames: Sequence[Any]) -> CaptionResult:
        """Caption every frame in one backend call (the backend batches)."""
        return self.parse(self.backend.generate(self.requests(frames)))


# --- parsing frame selections ---------------------------------------------------------------


class FrameParseError(ValueError):
    """A reply from which no frame list can be read (the message says why)."""


@dataclass
class ParsedFrames:
    """Frame indices read from a reply: ascending, unique, in ``[0, n)``; notes say what was
    repaired or dropped."""

    frames: list[int]
    notes: list[str] = field(default_factory=list)


def parse_frame_indices(text: str, num_frames: int) -> ParsedFrames:
    """Read the frame list from an LLM reply.

    Accepted: a JSON object with a ``"frames"`` list (or a close key such as
    ``"frame_indices"``), or a bare JSON list; inside code fences or surrounded by text; single
    quotes and trailing commas; items as integers, integral floats, numeric strings,
    ``"Frame 3"`` and ranges ``"3-5"`` / ``"3 to 5"``. A reply saying it counts from 1 (or whose
    indices run 1..n with no 0) is shifted to 0-based. Out-of-range and duplicate indices are
    dropped. An empty list is a valid answer. Each repair is described in ``notes``.

    Args:
        text: the raw reply.
        num_frames: n, the number of captioned frames.

    Returns:
        `ParsedFrames`.

    Raises:
        FrameParseError: no JSON frame list in the reply, or items that are not frame numbers.

    Example:
        >>> parse_frame_indices('Sure: ```json\\n{"frames": ["2-4", 9, 9]}\\n```', 8).frames
        [2, 3, 4]
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not text or not text.strip():
        raise FrameParseError("the reply is empty")
    notes: list[str] = []
    first_error: FrameParseError | None = None
    for value, note in _json_values(text):
        attempt_notes = [note] if note else []
        try:
            items = _frame_list(value, attempt_notes)
            indices = [index for item in items for index in _item_indices(item)]
        except FrameParseError as err:
            first_error = first_error or err
            continue
        notes += attempt_notes
        break
    else:
        raise first_error or FrameParseError(
            'no JSON object like {"frames": [...]} or list in the reply'
        )
    if _ONE_BASED.search(text) and not re.search(r"\b(?:0|zero)[- ]?based\b", text, re.I):
        indices = [i - 1 for i in indices]
        notes.append("the reply says it counts from 1: shifted to 0-based")
    elif indices and num_frames in indices and 0 not in indices and min(indices) >= 1:
        indices = [i - 1 for i in indices]
        notes.append(
            f"index {num_frames} is out of range and 0 is absent: read as 1-based, shifted to 0-based"
        )
    kept: list[int] = []
    dropped_range: list[int] = []
    duplicates: list[int] = []
    for index in indices:
        if not 0 <= index < num_frames:
            dropped_range.append(index)
        elif index in kept:
            duplicates.append(index)
        else:
            kept.append(index)
    if dropped_range:
        notes.append(f"dropped out-of-range indices {dropped_range} (valid: 0 to {num_frames - 1})")
    if duplicates:
        notes.append(f"dropped duplicate indices {duplicates}")
    return ParsedFrames(sorted(kept), notes)


def _json_values(text: str) -> Iterator[tuple[Any, str | None]]:
    """Every JSON object or list in the reply, in order (inside a code fence first), each with
    a note when it needed repair."""
    fenced = _FENCE.search(text)
    sources = [fenced.group(1), text] if fenced else [text]
    decoder = json.JSONDecoder()
    for source in sources:
        repaired = _TRAILING_COMMA.sub(r"\1", source)
        variants = [(source, None)]
        if repaired != source:
            variants.append((repaired, "removed trailing commas"))
        for candidate, note in variants:
            for start, char in enumerate(candidate):
                if char not in "{[":
                    continue
                try:
                    value, _ = decoder.raw_decode(candidate, start)
                except ValueError:
                    value = _python_literal(candidate, start) if "'" in candidate else None
                    if value is None:
                        continue
                    yield value, "read Python-style quotes"
                    continue
                yield value, note


def _python_literal(text: str, start: int) -> Any:
    """``{'frames': [1, 2]}`` (single quotes) read with ``ast.literal_eval``, or None."""
    closing = {"{": "}", "[": "]"}[text[start]]
    end = text.find(closing, start)
    for _ in range(_MAX_LITERAL_TRIES):
        if end < 0:
            break
        try:
            value = ast.literal_eval(text[start : end + 1])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            end = text.find(closing, end + 1)
            continue
        return value if isinstance(value, (dict, list)) else None
    return None


def _frame_list(value: Any, notes: list[str]) -> list[Any]:
    if not isinstance(value, (dict, list)):
        raise FrameParseError(
            f"the reply's JSON is a {type(value).__name__}, not an object or list"
        )
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            raise FrameParseError("the reply is a list of objects, not of frame numbers")
        return value
    lowered = {str(k).lower().strip(): v for k, v in value.items()}
    for key in _FRAME_KEYS:
        if key in lowered:
            if key != "frames":
                notes.append(f"read the list from key {key!r}")
            found = lowered[key]
            break
    else:
        lists = [k for k, v in lowered.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise FrameParseError(
                f"the JSON object has no 'frames' list (keys: {', '.join(map(repr, lowered)) or 'none'})"
            )
        notes.append(f"read the list from key {lists[0]!r}")
        found = lowered[lists[0]]
    if found is None:
        notes.append("'frames' is null: read as an empty list")
        return []
    if isinstance(found, (int, float, str)) and not isinstance(found, bool):
        notes.append("'frames' is a single value, not a list")
        return [found]
    if not isinstance(found, list):
        raise FrameParseError(f"'frames' is a {type(found).__name__}, not a list")
    return found


def _item_indices(item: Any) -> list[int]:
    if isinstance(item, bool):
        raise FrameParseError(f"{item!r} is not a frame number")
    if isinstance(item, int):
        return [item]
    if isinstance(item, float):
        if item.is_integer():
            return [int(item)]
        raise FrameParseError(f"{item!r} is not a whole frame number")
    if isinstance(item, str):
        if match := _SINGLE.match(item):
            return [int(match.group(1))]
        if match := _RANGE.match(item):
            low, high = int(match.group(1)), int(match.group(2))
            if high < low:
                low, high = high, low
            if high - low > 100_000:
                raise FrameParseError(f"range {item!r} is implausibly long")
            return list(range(low, high + 1))
    raise FrameParseError(f"{item!r} is not a frame number or range")


# --- the temporal labeler -------------------------------------------------------------------


@dataclass
class TemporalJob:
    """One question to label from one video's captions."""

    captions: Sequence[str]
    timestamps: Sequence[float]
    question: str
    options: Sequence[str] = ()


@dataclass
class TemporalResult:
    """Temporal labels of one question.

    Attributes:
        scores: ``[n]`` 1.0 for chosen frames, 0.0 otherwise; all NaN on failure.
        frames: the chosen frame indices (ascending).
        raw: the last raw reply.
        replies: every raw reply, one per attempt.
        attempts: requests sent (1 + retries).
        error: why the sample failed, or None.
        notes: what parsing repaired or dropped.
        prompt_tokens, completion_tokens, cost: usage over all attempts.
    """

    scores: np.ndarray
    frames: list[int]
    raw: str
    replies: list[str] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class TemporalLabeler:
    """An LLM picks the helpful frames from the numbered captions (see the module docstring).

    Args:
        backend: a text backend (an image-text model works too).
        config: the stage's settings (`fslabels.config.TemporalStageConfig`: ``max_new_tokens``;
            ``temperature``; ``max_attempts``, requests per question at most, 1 = no retry;
            ``structured_output``, ask for `FRAMES_SCHEMA`, ``None``: when the backend supports
            it). Its backend fields are not used: the backend is given.
        **settings: fields of the config to replace (``max_attempts=2``).
    """

    def __init__(
        self, backend: Backend, config: TemporalStageConfig | None = None, **settings: Any
    ) -> None:
        self.config = stage_config(TemporalStageConfig, config, settings)
        self.backend = backend
        self.max_new_tokens = self.config.max_new_tokens
        self.temperature = self.config.temperature
        self.max_attempts = self.config.max_attempts
        structured = self.config.structured_output
        self.structured_output = (
            backend.supports_response_format if structured is None else structured
        )

    @property
    def prompts(self) -> dict[str, Any]:
        """The prompt templates in use (what `prompt_hash` hashes; cards show them)."""
        return {
            "intro": SELECTION_INTRO,
            "line": CAPTION_LINE,
            "instruction": SELECTION_INSTRUCTION,
            "repair": REPAIR_INSTRUCTION,
            "missing": MISSING_CAPTION,
            "question": format_question("{question}", ["{options}"]),
            "schema": FRAMES_SCHEMA if self.structured_output else None,
        }

    @property
    def prompt_hash(self) -> str:
        return stable_hash(self.prompts)

    def settings(self) -> dict[str, Any]:
        return stage_settings("temporal", self)

    def fingerprint(self) -> str:
        return stable_hash(self.settings())

    def request(
        self,
        captions: Sequence[str],
        timestamps: Sequence[float],
        question: str,
        options: Sequence[str] | None = None,
    ) -> ChatRequest:
        """The first request for one question."""
        if len(captions) != len(timestamps):
            raise ValueError(f"{len(captions)} captions but {len(timestamps)} timestamps")
        if not captions:
            raise ValueError("no captions: a sample needs at least one candidate frame")
        lines = [SELECTION_INTRO.format(n=len(captions))]
        lines += [
            CAPTION_LINE.format(index=i, time=float(t), caption=c.strip() or MISSING_CAPTION)
            for i, (c, t) in enumerate(zip(captions, timestamps, strict=True))
        ]
        lines += [
            format_question(question, options),
            SELECTION_INSTRUCTION.format(last=len(captions) - 1),
        ]
        return ChatRequest(
            [{"role": "user", "content": "\n".join(lines)}],
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            response_format=FRAMES_SCHEMA if self.structured_output else None,
        )

    def repair_request(
        self, request: ChatRequest, response: ChatResponse, error: str, num_frames: int
    ) -> ChatRequest:
        """A retry after a reply that could not be read: the reply and a correction appended.
        A failed request (no reply) is simply sent again."""
        if not response.ok:
            return request
        messages = [
            *request.messages,
            {"role": "assistant", "content": response.text},
            {
                "role": "user",
                "content": REPAIR_INSTRUCTION.format(error=error, last=num_frames - 1),
            },
        ]
        return ChatRequest(
            messages,
            max_new_tokens=request.max_new_tokens,
            temperature=request.temperature,
            response_format=request.response_format,
        )

    def parse(self, response: ChatResponse, num_frames: int) -> TemporalResult:
        """One attempt's result (``error`` set when the reply cannot be read)."""
        result = _empty_result(num_frames)
        _account(result, response)
        if not response.ok:
            result.error = f"request failed: {response.error}"
            return result
        try:
            parsed = parse_frame_indices(response.text, num_frames)
        except FrameParseError as err:
            result.error = str(err)
            return result
        result.frames, result.notes = parsed.frames, parsed.notes
        result.scores = np.zeros(num_frames)
        result.scores[parsed.frames] = 1.0
        return result

    def label_batch(self, jobs: Sequence[TemporalJob]) -> list[TemporalResult]:
        """Label many questions: each round sends every unfinished question in one backend call,
        retrying unreadable replies up to ``max_attempts``."""
        requests = [self.request(j.captions, j.timestamps, j.question, j.options) for j in jobs]
        results: list[TemporalResult] = [_empty_result(len(j.captions)) for j in jobs]
        pending = list(range(len(jobs)))
        for _ in range(self.max_attempts):
            if not pending:
                break
            responses = self.backend.generate([requests[i] for i in pending])
            still = []
            for i, response in zip(pending, responses, strict=True):
                n = len(jobs[i].captions)
                attempt = self.parse(response, n)
                results[i] = _merge(results[i], attempt)
                if attempt.error is not None:
                    requests[i] = self.repair_request(requests[i], response, attempt.error, n)
                    still.append(i)
            pending = still
        for i in pending:
            results[i].error = f"{results[i].error} (gave up after {results[i].attempts} attempts)"
        return results

    def label(
        self,
        captions: Sequence[str],
        timestamps: Sequence[float],
        question: str,
        options: Sequence[str] | None = None,
    ) -> TemporalResult:
        """Label one question (see `label_batch`)."""
        return self.label_batch([TemporalJob(captions, timestamps, question, options or ())])[0]


def _empty_result(num_frames: int) -> TemporalResult:
    return TemporalResult(scores=np.full(num_frames, np.nan), frames=[], raw="")


def _account(result: TemporalResult, response: ChatResponse) -> None:
    result.raw = response.text
    result.replies.append(response.text)
    result.attempts += 1
    result.prompt_tokens += response.prompt_tokens
    result.completion_tokens += response.completion_tokens
    if response.cost is not None:
        result.cost = (result.cost or 0.0) + response.cost


def _merge(previous: TemporalResult, attempt: TemporalResult) -> TemporalResult:
    """The latest attempt, carrying the replies and usage of the earlier ones."""
    attempt.replies = previous.replies + attempt.replies
    attempt.attempts += previous.attempts
    attempt.prompt_tokens += previous.prompt_tokens
    attempt.completion_tokens += previous.completion_tokens
    if previous.cost is not None:
        attempt.cost = previous.cost + (attempt.cost or 0.0)
    return attempt
