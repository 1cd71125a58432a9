"""The frozen downstream video LLM that answers from the selected frames.

`Answerer` wraps a transformers ``AutoModelForImageTextToText`` (default Qwen2-VL-7B-Instruct)
and its processor (loaded with `fslabels.vlm.load_processor`, so Qwen2-VL works without
torchvision). It takes the k frames a strategy chose and passes them the way the model family
expects video:

- ``frames_as="video"``: one video of k frames (``{"type": "video"}`` in the chat, the
  processor's ``videos=`` with ``do_sample_frames=False``, so the processor never re-samples
  them). Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision, LLaVA-NeXT-Video and Video-LLaVA take
  this form; it needs the processor's video processor, i.e. torchvision.
- ``frames_as="images"``: k images in one user turn, in time order (every other family, and
  the video families where torchvision is missing: CPU machines here).
- ``frames_as="auto"`` (default): video where the family and the installed processor can,
  images otherwise (a warning says so). The resolved form is part of the fingerprint.

Multiple-choice questions are scored two ways, both recorded: by **option-letter likelihood**
(the letter with the highest next-token probability after the prompt, spellings ``"A"`` and
``" A"`` summed) and by **generation** (greedy decoding, the letter read from the reply). With
``scoring="both"`` one ``generate`` call gives both (its first step's logits are the likelihood
pass). Open-ended questions are generated. ``scoring="options"`` instead asks the question
open-ended and picks the option whose text is the likeliest reply (summed log-probability, one
forward pass per option; lm-evaluation-harness's multiple-choice scoring): for models that answer
in words rather than letters, such as the world's answerer
(`fslabels.evaluation.teachers.world_answerer`).

Example:
    >>> answerer = Answerer(AnswererConfig(model="/tmp/framesel-tiny/qwen2-vl"))  # doctest: +SKIP
    >>> result = answerer.answer(selection.frames, build_prompt(question, options))  # doctest: +SKIP
    >>> result.choice, result.likelihood_choice, result.seconds  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from fslabels._components import fingerprint_fields
from fslabels.backends import NOT_IN_FINGERPRINT
from fslabels.evaluation.prompts import Prompt, parse_choice

__all__ = [
    "DEFAULT_ANSWER_MODEL",
    "FRAMES_AS",
    "SCORING",
    "VIDEO_FAMILIES",
    "AnswerResult",
    "Answerer",
    "AnswererConfig",
    "ContinuationScore",
    "chat_messages",
]

logger = logging.getLogger(__name__)

DEFAULT_ANSWER_MODEL = "Qwen/Qwen2-VL-7B-Instruct"
FRAMES_AS = ("auto", "video", "images")
SCORING = ("both", "likelihood", "generate", "options")
_DTYPES = ("float32", "bfloat16", "float16")
# Inputs with one value per token (besides the tokenizer's own model_input_names).
_PER_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
# Model families (config.model_type) whose processors take a video as a stack of frames.
VIDEO_FAMILIES = frozenset(
    {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision", "llava_next_video", "video_llava"}
)


def chat_messages(
    num_frames: int, text: str, frames_as: str = "images", reply: str | None = None
) -> list[dict[str, Any]]:
    """The answerer's chat: one user turn with the frames (one video entry with
    ``frames_as="video"``, else ``num_frames`` image entries) then ``text``; with ``reply``, the
    assistant's turn after it (what training on answers needs)."""
    if frames_as == "video":
        visual = [{"type": "video"}]
    else:
        visual = [{"type": "image"} for _ in range(num_frames)]
    messages = [{"role": "user", "content": [*visual, {"type": "text", "text": text}]}]
    if reply is not None:
        messages.append({"role": "assistant", "content": reply})
    return messages


@dataclass
class AnswererConfig:
    """The downstream model and how it is asked.

    Args:
        model: an image-text-to-text checkpoint (Hub id or local directory).
        revision: Hub revision (pin one for reproducible numbers).
        dtype: ``float32`` (CPU), ``bfloat16`` or ``float16`` (GPU).
        frames_as: ``auto``, ``video`` or ``images`` (see the module docstring).
        processor_kwargs: processor settings that change what the model sees (``max_pixels``
            ...): part of the fingerprint.
        scoring: ``both`` (default), ``likelihood`` (one forward pass, multiple choice only;
            open-ended questions are still generated), ``generate`` or ``options`` (each
            option's text scored as the reply to the open-ended question; multiple choice only).
        max_new_tokens: reply budget for generation.
        trust_remote_code: passed to transformers explicitly.
        device: ``cpu``, ``cuda`` ... (not in the fingerprint).
        attn_implementation: ``sdpa``, ``flash_attention_2`` ... (``None``: transformers'
            choice; not in the fingerprint).

    Raises:
        ValueError: an invalid value, naming the field and the rule.
    """

    model: str = DEFAULT_ANSWER_MODEL
    revision: str | None = None
    dtype: str = "float32"
    frames_as: str = "auto"
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    scoring: str = "both"
    max_new_tokens: int = 16
    trust_remote_code: bool = False
    device: str = field(default="cpu", metadata=NOT_IN_FINGERPRINT)
    attn_implementation: str | None = field(default=None, metadata=NOT_IN_FINGERPRINT)

    def __post_init__(self) -> None:
        if not isinstance(self.model, (str, os.PathLike)) or not str(self.model):
            raise ValueError(f"answerer.model must be a model id or path, got {self.model!r}")
        self.model = str(self.model)
        if self.dtype not in _DTYPES:
            raise ValueError(f"answerer.dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.frames_as not in FRAMES_AS:
            raise ValueError(
                f"answerer.frames_as must be one of {FRAMES_AS}, got {self.frames_as!r}"
            )
        if self.scoring not in SCORING:
            raise ValueError(f"answerer.scoring must be one of {SCORING}, got {self.scoring!r}")
        if not isinstance(self.processor_kwargs, Mapping):
            raise ValueError(
                f"answerer.processor_kwargs must be a mapping, got {self.processor_kwargs!r}"
            )
        self.processor_kwargs = dict(self.processor_kwargs)
        if (
            isinstance(self.max_new_tokens, bool)
            or not isinstance(self.max_new_tokens, int)
            or self.max_new_tokens < 1
        ):
            raise ValueError(
                f"answerer.max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}"
            )

    @property
    def generates(self) -> bool:
        return self.scoring in ("both", "generate")

    @property
    def scores_likelihood(self) -> bool:
        return self.scoring in ("both", "likelihood")


@dataclass
class AnswerResult:
    """One answer.

    Attributes:
        prompt: the exact text given to the processor (chat template applied; one vision
            placeholder per image, or one for the video, which the processor expands).
        frames_as: ``video`` or ``images``.
        num_frames: frames given.
        reply: the generated reply (``None`` when not generated).
        finish_reason: ``stop`` or ``length`` (``None`` when not generated).
        choice: the letter read from the reply (multiple choice; ``None`` if none).
        likelihood_choice: the letter with the highest likelihood (multiple choice with
            likelihood or options scoring).
        letter_logprobs: ``{letter: log-probability}`` at the answer's first token (options
            scoring: of the option's whole text).
        prompt_tokens, completion_tokens: tokens read (vision tokens included) and generated.
        seconds: wall time (processor + model).
    """

    prompt: str
    frames_as: str
    num_frames: int
    reply: str | None = None
    finish_reason: str | None = None
    choice: str | None = None
    likelihood_choice: str | None = None
    letter_logprobs: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ContinuationScore(NamedTuple):
    """How likely a continuation is: summed log-probability, whether greedy decoding produces
    it, and its length in tokens."""

    logprob: float
    is_greedy: bool
    num_tokens: int


class Answerer:
    """The frozen downstream model (see the module docstring).

    Args:
        config: an `AnswererConfig`, or its fields as keyword arguments.

    The processor loads on `resolve` (cheap: it decides ``frames_as`` and the fingerprint), the
    model on `load` (or the first answer).
    """

    def __init__(self, config: AnswererConfig | Mapping[str, Any] | None = None, **kwargs: Any):
        if config is None:
            config = AnswererConfig(**kwargs)
        elif isinstance(config, Mapping):
            config = AnswererConfig(**{**config, **kwargs})
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config: AnswererConfig = config
        self.processor: Any = None
        self.tokenizer: Any = None
        self.model: Any = None
        self.model_type: str | None = None
        self.frames_as: str | None = None
        self.model_id: str | None = None
        self._eos_ids: set[int] = set()
        self._letter_ids: dict[str, list[int]] = {}

    def __repr__(self) -> str:
        return f"Answerer({self.config.model!r}, frames_as={self.frames_as or self.config.frames_as!r})"

    # --- loading ------------------------------------------------------------------------------

    def resolve(self) -> None:
        """Load the processor and decide how frames are passed (idempotent, no model weights).

        Raises:
            ValueError: ``frames_as="video"`` where the processor cannot take videos.
        """
        if self.processor is not None:
            return
        from transformers import AutoConfig

        from fslabels.evaluation.scorers import model_content_id
        from fslabels.vlm import load_processor

        cfg = self.config
        # What the files hold now: the weights `load` reads right after (part of the fingerprint).
        self.model_id = model_content_id(cfg.model, cfg.revision)
        hub = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
        self.model_type = getattr(AutoConfig.from_pretrained(cfg.model, **hub), "model_type", None)
        self.processor = load_processor(cfg.model, **hub, **cfg.processor_kwargs)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        can_video = getattr(self.processor, "video_processor", None) is not None
        family_video = self.model_type in VIDEO_FAMILIES
        if cfg.frames_as == "video" and not can_video:
            raise ValueError(
                f"answerer.frames_as=video, but the processor of {cfg.model} cannot take videos "
                "here (transformers' video processors need torchvision); use frames_as=images or "
                "auto"
            )
        if cfg.frames_as == "auto":
            self.frames_as = "video" if (family_video and can_video) else "images"
            if family_video and not can_video:
                logger.warning(
                    "%s: a video model whose video processor is unavailable (no torchvision): "
                    "the selected frames go in as images, in time order",
                    cfg.model,
                )
        else:
            self.frames_as = cfg.frames_as

    def load(self) -> None:
        """Load the processor and the model (idempotent)."""
        if self.model is not None:
            return
        import torch
        from transformers import AutoModelForImageTextToText

        self.resolve()
        cfg = self.config
        extra = {}
        if cfg.attn_implementation:
            extra["attn_implementation"] = cfg.attn_implementation
        self.model = (
            AutoModelForImageTextToText.from_pretrained(
                cfg.model,
                revision=cfg.revision,
                trust_remote_code=cfg.trust_remote_code,
                dtype=getattr(torch, cfg.dtype),
                **extra,
            )
            .to(cfg.device)
            .eval()
        )
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self._eos_ids = eos_ids

    def unload(self) -> None:
        """Free the model and processor; the next `resolve` or `load` reads the model's files
        again (and its content id: a model retrained in place meanwhile is a new model)."""
        self.model = self.processor = self.tokenizer = None
        self.model_id = self.frames_as = None
        self._letter_ids = {}

    def fingerprint(self) -> dict[str, Any]:
        """What changes the answers: the config (minus device and attention kernel), the
        resolved ``frames_as`` and the model's content (`fslabels.evaluation.scorers.model_content_id`
        of the files loaded: a directory's file hashes, a Hub id's commit)."""
        self.resolve()
        return {
            **fingerprint_fields(self.config),
            "frames_as": self.frames_as,
            "model_id": self.model_id,
        }

    # --- inputs -------------------------------------------------------------------------------

    def render(self, num_frames: int, text: str) -> str:
        """The chat-template text for ``num_frames`` frames followed by ``text`` (with the
        generation prompt)."""
        self.resolve()
        return self.processor.apply_chat_template(
            chat_messages(num_frames, text, self.frames_as), tokenize=False,
            add_generation_prompt=True,
        )  # fmt: skip

    def inputs(self, frames: Sequence[Any] | np.ndarray, text: str) -> tuple[str, Any]:
        """``(rendered prompt, model inputs on the model's device)`` for the frames and text.

        Raises:
            ValueError: no frames, or frames that are not RGB uint8 images.
        """
        from fslabels.backends.images import to_pil

        self.resolve()
        if len(frames) == 0:
            raise ValueError("the answerer needs at least one frame")
        prompt = self.render(len(frames), text)
        if self.frames_as == "video":
            video = np.stack([np.asarray(to_pil(f)) for f in frames])
            batch = self.processor(
                videos=[video], text=[prompt], return_tensors="pt", do_sample_frames=False
            )
        else:
            batch = self.processor(
                images=[to_pil(f) for f in frames], text=[prompt], return_tensors="pt"
            )
        device = self.model.device if self.model is not None else self.config.device
        return prompt, batch.to(device)

    def _letter_token_ids(self, letters: Sequence[str]) -> dict[str, list[int]]:
        out = {}
        for letter in letters:
            if letter not in self._letter_ids:
                ids = set()
                for spelling in (letter, f" {letter}"):
                    encoded = self.tokenizer(spelling, add_special_tokens=False)["input_ids"]
                    if len(encoded) == 1:
                        ids.add(int(encoded[0]))
                if not ids:
                    raise ValueError(
                        f"the tokenizer of {self.config.model} has no single token for option "
                        f"letter {letter!r}; use scoring=generate"
                    )
                self._letter_ids[letter] = sorted(ids)
            out[letter] = self._letter_ids[letter]
        return out

    def _letter_logprobs(self, logits: Any, letters: Sequence[str]) -> dict[str, float]:
        import torch

        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return {
            letter: float(torch.logsumexp(logprobs[ids], dim=0))
            for letter, ids in self._letter_token_ids(letters).items()
        }

    # --- answering ----------------------------------------------------------------------------

    def answer(self, frames: Sequence[Any] | np.ndarray, prompt: Prompt) -> AnswerResult:
        """Answer ``prompt`` from ``frames`` (the selected frames, in time order).

        Raises:
            ValueError: see `inputs`; a tokenizer without single-token option letters
                (likelihood scoring).
        """
        import torch

        self.load()
        cfg = self.config
        start = time.perf_counter()
        options = cfg.scoring == "options" and prompt.multiple_choice
        if options and not prompt.open_text:
            raise ValueError("options scoring needs the prompt's open_text (use build_prompt)")
        rendered, batch = self.inputs(frames, prompt.open_text if options else prompt.text)
        result = AnswerResult(
            prompt=rendered,
            frames_as=self.frames_as or "images",
            num_frames=len(frames),
            prompt_tokens=int(batch["attention_mask"].sum()),
        )
        likelihood = cfg.scores_likelihood and prompt.multiple_choice
        generate = cfg.generates or not prompt.multiple_choice
        with torch.inference_mode():
            if generate:
                out = self.model.generate(
                    **batch,
                    max_new_tokens=cfg.max_new_tokens,
                    do_sample=False,
                    output_logits=likelihood,
                    return_dict_in_generate=True,
                    pad_token_id=self._pad_id(),
                )
                first_logits = out.logits[0][0] if likelihood else None
                ids = out.sequences[0, batch["input_ids"].shape[1] :].tolist()
                stop = next((t for t, tok in enumerate(ids) if tok in self._eos_ids), None)
                kept = ids if stop is None else ids[:stop]
                result.reply = self.tokenizer.decode(kept, skip_special_tokens=True)
                result.finish_reason = "length" if stop is None else "stop"
                result.completion_tokens = len(kept) + (stop is not None)
                if prompt.multiple_choice:
                    result.choice = parse_choice(result.reply, prompt.letters, prompt.options)
            elif likelihood:
                first_logits = self.model(**batch).logits[0, -1]
        if options:
            result.letter_logprobs = {
                letter: self._continuation(batch, text).logprob
                for letter, text in zip(prompt.letters, prompt.options, strict=True)
            }
        elif likelihood:
            result.letter_logprobs = self._letter_logprobs(first_logits, prompt.letters)
        if options or likelihood:
            result.likelihood_choice = max(
                prompt.letters, key=lambda letter: (result.letter_logprobs[letter], -ord(letter))
            )
        result.seconds = time.perf_counter() - start
        return result

    def _per_token_keys(self, batch: Mapping[str, Any]) -> list[str]:
        """The inputs with one value per prompt token (ids, attention mask, token types), which
        grow with the ids. Chosen by name, never by shape: vision inputs such as Qwen2-VL's
        ``pixel_values`` (``[patches, 1176]``) can have as many columns as the prompt has
        tokens."""
        names = {*_PER_TOKEN_INPUTS, *getattr(self.tokenizer, "model_input_names", ())}
        length = batch["input_ids"].shape[1]
        keys = []
        for key in batch:
            if key not in names:
                continue
            shape = tuple(getattr(batch[key], "shape", ()))
            if len(shape) != 2 or shape[1] != length:
                raise ValueError(
                    f"the processor of {self.config.model} returned {key} of shape {shape}, "
                    f"expected one value per prompt token ({shape[:1]}, {length})"
                )
            keys.append(key)
        return keys

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else min(self._eos_ids, default=0)

    # --- what lmms-eval asks for --------------------------------------------------------------

    def generate_text(
        self,
        frames: Sequence[Any] | np.ndarray,
        text: str,
        max_new_tokens: int | None = None,
        until: Sequence[str] = (),
    ) -> str:
        """Greedy reply to ``text`` about ``frames``, cut at the first of ``until``."""
        import torch

        self.load()
        _, batch = self.inputs(frames, text)
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                do_sample=False,
                pad_token_id=self._pad_id(),
            )
        ids = out[0, batch["input_ids"].shape[1] :].tolist()
        stop = next((t for t, tok in enumerate(ids) if tok in self._eos_ids), None)
        reply = self.tokenizer.decode(ids if stop is None else ids[:stop], skip_special_tokens=True)
        for marker in until:
            if marker and marker in reply:
                reply = reply[: reply.index(marker)]
        return reply

    def loglikelihood(
        self, frames: Sequence[Any] | np.ndarray, context: str, continuation: str
    ) -> ContinuationScore:
        """log p(continuation | frames, context), whether greedy decoding yields it, and its
        token count; the continuation follows the assistant header of the chat template.

        Raises:
            ValueError: an empty continuation, or a processor whose per-token inputs are not
                one row of prompt length.
        """
        self.load()
        _, batch = self.inputs(frames, context)
        return self._continuation(batch, continuation)

    def _continuation(self, batch: Mapping[str, Any], continuation: str) -> ContinuationScore:
        """`loglikelihood` of ``continuation`` after an already processed prompt ``batch``."""
        import torch

        cont = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not cont:
            raise ValueError(f"continuation {continuation!r} has no tokens")
        length = batch["input_ids"].shape[1]
        extra = torch.tensor(
            [cont], dtype=batch["input_ids"].dtype, device=batch["input_ids"].device
        )
        inputs = dict(batch)
        for key in self._per_token_keys(batch):
            # The continuation's tokens are text: attended to, token type 0.
            fill = (
                extra
                if key == "input_ids"
                else torch.full_like(extra, int(key == "attention_mask"))
            )
            inputs[key] = torch.cat([batch[key], fill.to(batch[key].dtype)], dim=1)
        with torch.inference_mode():
            logits = self.model(**inputs).logits[0, length - 1 : length - 1 + len(cont)]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        target = torch.tensor(cont, device=logprobs.device)
        total = float(logprobs[torch.arange(len(cont)), target].sum())
        greedy = bool((logprobs.argmax(dim=-1) == target).all())
        return ContinuationScore(total if math.isfinite(total) else -math.inf, greedy, len(cont))
