"""The frame selector's processor: frames + question -> ``input_ids``, ``attention_mask``,
``pixel_values``.

Prompt layout of one row (``g = pooled_grid``; ``[...]`` is optional)::

    <|im_start|>user\\n{instruction}\\n
    <|vision_start|>                                                  (once)
    [{timestamp}]<|image_pad|> x g*g                                  (once per frame, n times)
    <|vision_end|>                                                    (once)
    \\nQuestion: {question}[\\nOptions:\\nA. ...\\nB. ...]<|im_end|>\\n<|im_start|>assistant\\n
    <|video_pad|>                                                     (the score query, last)

With ``question_first=True`` the ``Question: ...[Options: ...]`` part comes right after the
instruction, before ``<|vision_start|>``. Rows are LEFT-padded, so the score query is every
row's last token. For n = 128 and g = 3 the frames take ``128 * 9 = 1152`` tokens (the paper's
budget); the instruction and question add a few dozen. A frame's position in the block is its
identity, as for the score head's outputs; ``frame_separators=True`` wraps every frame in
``<|vision_start|>…<|vision_end|>`` instead (2 more tokens per frame, 256 at n = 128: the LLM
pass then costs ~20 % more).

This file ships to the Hub beside the weights as remote code (``auto_map``), so it imports only
numpy, transformers and the standard library.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoImageProcessor, AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

DEFAULT_INSTRUCTION = (
    "Here are frames sampled from a video. Rate how helpful each frame is for answering the "
    "question below."
)

FRAME_START = "<|vision_start|>"
FRAME_END = "<|vision_end|>"
FRAME_TOKEN = "<|image_pad|>"
SCORE_TOKEN = "<|video_pad|>"
LAYOUT_TOKENS = (FRAME_START, FRAME_END, FRAME_TOKEN, SCORE_TOKEN)

_OPTION_LABEL = re.compile(r"^\s*\(?[A-Za-z][.):]\s")


class FrameSelectorProcessor(ProcessorMixin):
    """Builds the selector's inputs from candidate frames and a question.

    Args:
        image_processor: the vision tower's image processor (SigLIP; the PIL backend works
            without torchvision).
        tokenizer: the LLM's tokenizer; must contain the Qwen special tokens
            ``<|vision_start|>``, ``<|vision_end|>``, ``<|image_pad|>``, ``<|video_pad|>``.
        pooled_grid: frame tokens per frame side (``pooled_grid**2`` ``<|image_pad|>`` per
            frame); must equal the model's ``config.pooled_grid``.
        instruction: the text before the frames.
        timestamp_format: ``None`` (default: no timestamps in the prompt), or a format string
            with field ``t`` (seconds) written before each frame, e.g. ``"{t:.0f}s"`` (a few
            tokens per frame). A model must be trained with the layout it is used with.
        frame_separators: wrap each frame in ``<|vision_start|>…<|vision_end|>`` (default: the
            whole frame block is wrapped once).
        question_first: write the question (and options) before the frames instead of after
            them (default, the paper's layout). The LLM is causal, so only with the question
            first can each frame's tokens attend to it; with it last, all the matching of
            question to frames happens in the few tokens after the frames.

    Example:
        >>> processor = FrameSelectorProcessor.from_backbones(
        ...     "google/siglip-so400m-patch14-384", "Qwen/Qwen2.5-1.5B-Instruct")
        >>> batch = processor(frames=frames, question="What colour is the car?")
        >>> batch["input_ids"].shape, batch["pixel_values"].shape
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        pooled_grid: int = 3,
        instruction: str = DEFAULT_INSTRUCTION,
        timestamp_format: str | None = None,
        frame_separators: bool = False,
        question_first: bool = False,
        **kwargs: Any,
    ):
        if isinstance(pooled_grid, bool) or not isinstance(pooled_grid, int) or pooled_grid < 1:
            raise ValueError(f"pooled_grid must be a positive integer, got {pooled_grid!r}")
        if timestamp_format is not None:
            try:
                timestamp_format.format(t=1.5)
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    "timestamp_format must be a format string with the single field {t} (seconds), "
                    f"e.g. '{{t:.0f}}s'; got {timestamp_format!r} ({err})"
                ) from None
        self.pooled_grid = pooled_grid
        self.instruction = instruction
        self.timestamp_format = timestamp_format
        self.frame_separators = bool(frame_separators)
        self.question_first = bool(question_first)
        super().__init__(image_processor, tokenizer, **kwargs)
        vocab = tokenizer.get_vocab()
        missing = [t for t in LAYOUT_TOKENS if t not in vocab]
        if missing:
            raise ValueError(
                f"the tokenizer lacks the layout tokens {missing}; the selector reuses the Qwen "
                "special tokens"
            )
        self.layout_ids = {t: vocab[t] for t in LAYOUT_TOKENS}

    @classmethod
    def from_backbones(
        cls,
        vision: str | os.PathLike = "google/siglip-so400m-patch14-384",
        llm: str | os.PathLike = "Qwen/Qwen2.5-1.5B-Instruct",
        backend: str | None = "pil",
        **kwargs: Any,
    ) -> FrameSelectorProcessor:
        """The processor for `FrameSelectorModel.from_backbones(vision, llm)`: the vision
        checkpoint's image processor (``backend="pil"`` by default, which needs no torchvision;
        ``None`` picks torchvision where it imports) and the LLM's tokenizer.

        ``kwargs`` go to the constructor (``pooled_grid``, ``instruction``, ``timestamp_format``,
        ``frame_separators``, ``question_first``).
        """
        image_processor = AutoImageProcessor.from_pretrained(vision, backend=backend)
        tokenizer = AutoTokenizer.from_pretrained(llm)
        return cls(image_processor=image_processor, tokenizer=tokenizer, **kwargs)

    @property
    def frame_tokens_per_frame(self) -> int:
        return self.pooled_grid**2

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]

    def __call__(
        self,
        frames: Any = None,
        question: str | Sequence[str] | None = None,
        options: Sequence[str] | Sequence[Sequence[str] | None] | None = None,
        timestamps: Sequence[float] | Sequence[Sequence[float]] | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Encode one sample or a batch.

        Args:
            frames: one sample (``[n, H, W, 3]`` uint8 RGB array, or a list of ``[H, W, 3]``
                arrays / PIL images) when ``question`` is a string; a list of samples when
                ``question`` is a list. Every sample of a batch needs the same n.
            question: a non-empty string, or a list of them.
            options: answer options (a list of strings; per sample in a batch, each may be
                ``None``); written one per line, lettered A., B., ... unless already labelled.
            timestamps: per-frame seconds (per sample in a batch); required when
                ``timestamp_format`` is set, ignored otherwise.
            return_tensors: ``"pt"`` (default), ``"np"`` or ``None`` (lists).
            **kwargs: passed to the image processor.

        Returns:
            `BatchFeature` with ``input_ids`` and ``attention_mask`` ``[B, L]`` (left-padded)
            and ``pixel_values`` ``[B, n, 3, H, W]``.

        Raises:
            ValueError: an empty or missing question, frames of the wrong shape or dtype,
                batches of unequal n, mismatched batch lengths, a question containing a layout
                token, or missing timestamps.
        """
        if frames is None or question is None:
            raise ValueError("pass both frames=... and question=...")
        single = isinstance(question, str)
        if not single and not isinstance(question, (list, tuple)):
            raise ValueError(f"question must be a string or a list of strings, got {question!r}")
        questions = [question] if single else list(question)
        if not questions:
            raise ValueError("question must be a non-empty string or a non-empty list of them")
        samples = [frames] if single else _as_list(frames, "frames", len(questions))
        option_rows = [options] if single else _as_list(options, "options", len(questions))
        stamp_rows = [timestamps] if single else _as_list(timestamps, "timestamps", len(questions))

        arrays = [_to_frames(s, "" if single else f"sample {i}: ") for i, s in enumerate(samples)]
        counts = {len(a) for a in arrays}
        if len(counts) != 1:
            raise ValueError(
                f"every sample of a batch needs the same number of frames, got {sorted(counts)}"
            )
        text = self.text_inputs(
            questions, len(arrays[0]), option_rows, stamp_rows, return_tensors="np"
        )
        input_ids, attention_mask = text["input_ids"], text["attention_mask"]

        flat = [frame for array in arrays for frame in array]
        pixel_values = self.image_processor(
            images=flat, return_tensors="np", input_data_format="channels_last", **kwargs
        )["pixel_values"]
        pixel_values = np.asarray(pixel_values, dtype=np.float32)
        pixel_values = pixel_values.reshape(len(arrays), len(arrays[0]), *pixel_values.shape[1:])
        data = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": pixel_values,
        }
        if return_tensors is None:
            data = {key: value.tolist() for key, value in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def text_inputs(
        self,
        questions: Sequence[str],
        num_frames: int,
        options: Sequence[Sequence[str] | None] | None = None,
        timestamps: Sequence[Sequence[float] | None] | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """The text half of `__call__` for questions about one video of ``num_frames`` frames:
        ``input_ids`` and ``attention_mask`` ``[B, L]`` (left-padded), no pixels. With frame
        features encoded once (`FrameSelectorModel.encode_frames`), every question of a video
        costs only this and a language-model pass.

        Raises:
            ValueError: as `__call__` does for the questions, options and timestamps.
        """
        if not questions:
            raise ValueError("questions must be a non-empty list of strings")
        option_rows = [None] * len(questions) if options is None else list(options)
        stamp_rows = [None] * len(questions) if timestamps is None else list(timestamps)
        if len(option_rows) != len(questions) or len(stamp_rows) != len(questions):
            raise ValueError("options and timestamps need one entry per question")
        rows = [
            self._row_ids(q, o, s, num_frames)
            for q, o, s in zip(questions, option_rows, stamp_rows, strict=True)
        ]
        input_ids, attention_mask = self._left_pad(rows)
        data = {"input_ids": input_ids, "attention_mask": attention_mask}
        if return_tensors is None:
            data = {key: value.tolist() for key, value in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def prompt_length(
        self,
        num_frames: int,
        question: str,
        options: Sequence[str] | None = None,
        timestamps: Sequence[float] | None = None,
    ) -> int:
        """Tokens of one row (no padding): what the LLM reads for this question and n frames."""
        return len(self._row_ids(question, options, timestamps, num_frames))

    def _row_ids(self, question: Any, options: Any, timestamps: Any, n: int) -> list[int]:
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty string, got {question!r}")
        head = self._encode(f"<|im_start|>user\n{self.instruction}\n")
        tail_text = f"\nQuestion: {question.strip()}"
        if options:
            if isinstance(options, str) or not all(isinstance(o, str) for o in options):
                raise ValueError(f"options must be a list of strings, got {options!r}")
            tail_text += "\nOptions:\n" + "\n".join(
                o.strip() if _OPTION_LABEL.match(o) else f"{chr(ord('A') + i)}. {o.strip()}"
                for i, o in enumerate(options)
            )
        user_part = self._encode(tail_text)
        forbidden = set(self.layout_ids.values()).intersection(user_part)
        if forbidden:
            raise ValueError(
                f"the question/options contain layout tokens {sorted(forbidden)} "
                f"({', '.join(LAYOUT_TOKENS)} are reserved)"
            )
        end_of_turn = self._encode("<|im_end|>\n<|im_start|>assistant\n")
        stamps: list[list[int]] = [[] for _ in range(n)]
        if self.timestamp_format is not None:
            if timestamps is None or len(timestamps) != n:
                got = None if timestamps is None else len(timestamps)
                raise ValueError(
                    f"timestamp_format is set, so timestamps must hold one value per frame ({n}), "
                    f"got {got}"
                )
            stamps = [self._encode(self.timestamp_format.format(t=float(t))) for t in timestamps]
        start, end = [self.layout_ids[FRAME_START]], [self.layout_ids[FRAME_END]]
        frame = [self.layout_ids[FRAME_TOKEN]] * self.frame_tokens_per_frame
        if self.frame_separators:
            frame = start + frame + end
        ids = list(head)
        if self.question_first:
            ids += user_part
        if not self.frame_separators:
            ids += start
        for stamp in stamps:
            ids += stamp + frame
        if not self.frame_separators:
            ids += end
        if not self.question_first:
            ids += user_part
        return [*ids, *end_of_turn, self.layout_ids[SCORE_TOKEN]]

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _left_pad(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        length = max(len(r) for r in rows)
        input_ids = np.full((len(rows), length), pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, length - len(row) :] = row
            attention_mask[i, length - len(row) :] = 1
        return input_ids, attention_mask


def _as_list(values: Any, name: str, size: int) -> list[Any]:
    if values is None:
        return [None] * size
    if isinstance(values, np.ndarray) and name == "frames" and values.ndim == 5:
        values = list(values)
    if not isinstance(values, (list, tuple)) or len(values) != size:
        got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise ValueError(
            f"with a list of {size} questions, {name} must be a list of {size} samples, got {got}"
        )
    return list(values)


def _to_frames(sample: Any, where: str) -> np.ndarray:
    if isinstance(sample, np.ndarray):
        array = sample
    elif isinstance(sample, (list, tuple)) and sample:
        parts = []
        for frame in sample:
            if hasattr(frame, "convert") and hasattr(frame, "size"):  # a PIL image
                frame = frame.convert("RGB")
            parts.append(np.asarray(frame))
        shapes = {p.shape for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"{where}all frames must have the same shape, got {sorted(shapes)}")
        array = np.stack(parts)
    else:
        raise ValueError(
            f"{where}frames must be a [n, H, W, 3] uint8 array or a non-empty list of frames, "
            f"got {type(sample).__name__}"
        )
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise ValueError(
            f"{where}frames must have shape [n, H, W, 3] (RGB), got {list(array.shape)}"
        )
    if array.dtype != np.uint8:
        raise ValueError(f"{where}frames must be uint8 RGB, got dtype {array.dtype}")
    return array


__all__ = ["DEFAULT_INSTRUCTION", "FrameSelectorProcessor"]
