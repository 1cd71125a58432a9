"""In-process generation with transformers: the embedded default backend.

Image-text checkpoints (Qwen2-VL, Qwen2.5-VL, ...) load with ``AutoModelForImageTextToText`` and
their processor through `fslabels.vlm.load_processor` (the one way framesel loads one); text
checkpoints with ``AutoModelForCausalLM`` and ``AutoTokenizer``. Which one is read from the
checkpoint's config (``model_class="auto"``).

Requests are rendered with the checkpoint's chat template, grouped by sampling parameters and
run in LEFT-padded batches of ``batch_size``. Log-probabilities come from the raw logits
(``generate(output_logits=True)``, before any logits processor) through ``log_softmax``, the
same quantity vLLM and the OpenAI API return. Memory for them is ``batch x steps x vocab``
floats, bounded by ``batch_size``; they are only computed when a request asks for them.

A request the processor rejects, or a batch that fails to run, is retried one request at a time
so only the bad request records an error.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import Any

from .base import (
    NOT_IN_FINGERPRINT,
    Backend,
    BackendConfig,
    ChatRequest,
    ChatResponse,
    merge_logprob,
    message_text,
)
from .images import to_pil

__all__ = ["TransformersBackend", "TransformersConfig"]

logger = logging.getLogger(__name__)

MODEL_CLASSES = ("auto", "image-text-to-text", "causal-lm")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class TransformersConfig(BackendConfig):
    """Config of the transformers backend.

    Args:
        model: Hub repo id or local checkpoint directory.
        revision: Hub branch, tag or commit (pin a commit for reproducible labels).
        dtype: ``"float32"`` (the default: on CPU, bf16 is slower), ``"bfloat16"``, ``"float16"``.
        model_class: ``"auto"`` (from the config), ``"image-text-to-text"`` or ``"causal-lm"``.
        trust_remote_code: passed to transformers explicitly.
        processor_kwargs: extra processor settings (e.g. ``{"max_pixels": 401408}``); they change
            what the model sees, so they are part of the fingerprint.
        seed: seed for sampling (temperature > 0).
        batch_size: requests per forward batch (not in the fingerprint).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (not in the fingerprint).
        sort_by_length: batch prompts of similar length together, less padding (not in the
            fingerprint).
    """

    model: str
    revision: str | None = None
    dtype: str = "float32"
    model_class: str = "auto"
    trust_remote_code: bool = False
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = field(default=8, metadata=NOT_IN_FINGERPRINT)
    device: str = field(default="cpu", metadata=NOT_IN_FINGERPRINT)
    sort_by_length: bool = field(default=True, metadata=NOT_IN_FINGERPRINT)

    def __post_init__(self) -> None:
        self.model = str(self.model)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.model_class not in MODEL_CLASSES:
            raise ValueError(
                f"model_class must be one of {MODEL_CLASSES}, got {self.model_class!r}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")


@dataclass
class _Prepared:
    index: int
    request: ChatRequest
    text: str
    images: list[Any]


class TransformersBackend(Backend):
    """Generation with a transformers model in this process (see the module docstring).

    Example:
        >>> backend = TransformersBackend(model="/tmp/framesel-tiny/qwen2-vl", batch_size=4)  # doctest: +SKIP
        >>> backend.generate([ChatRequest(messages, max_new_tokens=32, top_logprobs=5)])  # doctest: +SKIP
    """

    name = "transformers"
    config_class = TransformersConfig
    supports_response_format = False
    supports_prefill = True

    config: TransformersConfig

    def __init__(self, config: TransformersConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.model: Any = None
        self.processor: Any = None
        self.tokenizer: Any = None
        self.is_multimodal = False
        self._eos_ids: set[int] = set()
        self._token_strings: dict[int, str] = {}

    # --- loading ----------------------------------------------------------------------------

    def _load(self) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoTokenizer,
        )

        cfg = self.config
        hub = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
        model_config = AutoConfig.from_pretrained(cfg.model, **hub)
        self.is_multimodal = _is_image_text(model_config, cfg.model_class)
        dtype = getattr(torch, cfg.dtype)
        if self.is_multimodal:
            from fslabels.vlm import load_processor

            self.processor = load_processor(cfg.model, **hub, **cfg.processor_kwargs)
            self.tokenizer = self.processor.tokenizer
            model_cls = AutoModelForImageTextToText
        else:
            self.processor = None
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, **hub, **cfg.processor_kwargs)
            model_cls = AutoModelForCausalLM
        self.model = model_cls.from_pretrained(cfg.model, dtype=dtype, **hub).to(cfg.device).eval()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self._eos_ids = eos_ids
        self._pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else min(eos_ids, default=0)
        )
        self._token_strings = {}

    def _unload(self) -> None:
        self.model = self.processor = self.tokenizer = None
        self._token_strings = {}
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a core dependency
            pass

    # --- generation -------------------------------------------------------------------------

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        responses: list[ChatResponse | None] = [None] * len(requests)
        groups: dict[tuple[int, float], list[_Prepared]] = {}
        for i, request in enumerate(requests):
            try:
                prepared = self._prepare(i, request)
            except Exception as err:
                responses[i] = ChatResponse.failed(f"invalid request: {type(err).__name__}: {err}")
                continue
            key = (request.max_new_tokens, float(request.temperature))
            groups.setdefault(key, []).append(prepared)
        for (max_new_tokens, temperature), items in groups.items():
            if self.config.sort_by_length:
                items = sorted(items, key=lambda p: len(p.text) + 1000 * len(p.images))
            size = self.config.batch_size
            for start in range(0, len(items), size):
                batch = items[start : start + size]
                for prepared, response in self._run_isolating(batch, max_new_tokens, temperature):
                    responses[prepared.index] = response
        return [r if r is not None else ChatResponse.failed("not run") for r in responses]

    def _prepare(self, index: int, request: ChatRequest) -> _Prepared:
        """Render the chat template; check the images. Raises for a request that cannot run."""
        images = [to_pil(image) for image in request.images]
        if images and not self.is_multimodal:
            raise ValueError(
                f"{self.config.model} is a text-only model; the request holds {len(images)} image(s)"
            )
        messages = [_template_message(m, self.is_multimodal) for m in request.messages]
        renderer = self.processor if self.is_multimodal else self.tokenizer
        text = renderer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=not request.continue_final_message,
            continue_final_message=request.continue_final_message,
        )
        return _Prepared(index, request, text, images)

    def _run_isolating(
        self, batch: list[_Prepared], max_new_tokens: int, temperature: float
    ) -> list[tuple[_Prepared, ChatResponse]]:
        """Run a batch; if it fails, run its requests one by one so only bad ones fail."""
        try:
            return list(
                zip(batch, self._run_batch(batch, max_new_tokens, temperature), strict=True)
            )
        except Exception as err:
            if len(batch) == 1:
                return [(batch[0], ChatResponse.failed(f"{type(err).__name__}: {err}"))]
            logger.warning(
                "a batch of %d requests failed (%s: %s); running them one at a time",
                len(batch),
                type(err).__name__,
                err,
            )
            out: list[tuple[_Prepared, ChatResponse]] = []
            for item in batch:
                out += self._run_isolating([item], max_new_tokens, temperature)
            return out

    def _run_batch(
        self, batch: list[_Prepared], max_new_tokens: int, temperature: float
    ) -> list[ChatResponse]:
        import torch

        texts = [p.text for p in batch]
        if self.is_multimodal:
            images = [image for p in batch for image in p.images]
            inputs = self.processor(
                images=images or None,
                text=texts,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            )
        else:
            inputs = self.tokenizer(
                texts,
                padding=True,
                padding_side="left",
                return_tensors="pt",
                add_special_tokens=False,
            )
        inputs = inputs.to(self.model.device)
        want_logprobs = any(p.request.top_logprobs is not None for p in batch)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
            if temperature > 0
            else {"do_sample": False}
        )
        if temperature > 0:
            torch.manual_seed(self.config.seed)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                pad_token_id=self._pad_id,
                output_logits=want_logprobs,
                return_dict_in_generate=True,
                **sampling,
            )
        prompt_len = inputs["input_ids"].shape[1]
        generated = out.sequences[:, prompt_len:].tolist()
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        responses = []
        for row, prepared in enumerate(batch):
            ids = generated[row]
            stop = next((t for t, tok in enumerate(ids) if tok in self._eos_ids), None)
            kept = ids if stop is None else ids[:stop]
            response = ChatResponse(
                text=self.tokenizer.decode(kept, skip_special_tokens=True),
                prompt_tokens=int(prompt_tokens[row]),
                completion_tokens=len(kept) + (stop is not None),
                finish_reason="length" if stop is None else "stop",
            )
            k = prepared.request.top_logprobs
            if k is not None and kept:
                steps = torch.stack([out.logits[t][row] for t in range(len(kept))]).float()
                self._fill_logprobs(response, kept, torch.log_softmax(steps, dim=-1), k)
            responses.append(response)
        return responses

    def _fill_logprobs(self, response: ChatResponse, ids: list[int], logprobs: Any, k: int) -> None:
        import torch

        chosen = logprobs[torch.arange(len(ids)), torch.tensor(ids)]
        response.tokens = [self._token_string(i) for i in ids]
        response.token_logprobs = chosen.tolist()
        if k == 0:
            response.top_logprobs = [{} for _ in ids]
            return
        values, indices = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
        for step_values, step_ids in zip(values.tolist(), indices.tolist(), strict=True):
            dist: dict[str, float] = {}
            for token_id, value in zip(step_ids, step_values, strict=True):
                merge_logprob(dist, self._token_string(token_id), value)
            response.top_logprobs.append(dist)

    def _token_string(self, token_id: int) -> str:
        text = self._token_strings.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id])
            self._token_strings[token_id] = text
        return text


def _is_image_text(model_config: Any, model_class: str) -> bool:
    if model_class != "auto":
        return model_class == "image-text-to-text"
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return model_config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def _template_message(message: dict[str, Any], multimodal: bool) -> dict[str, Any]:
    """A message as chat templates expect it: image parts become placeholders (the processor
    receives the images separately); text-only models and assistant turns get string content."""
    content = message["content"]
    if isinstance(content, str):
        return {"role": message["role"], "content": content}
    if not multimodal or message["role"] == "assistant":
        return {"role": message["role"], "content": message_text(content)}
    parts = []
    for part in content:
        if part.get("type") == "image":
            parts.append({"type": "image"})
        elif part.get("type") == "text":
            parts.append({"type": "text", "text": part["text"]})
        else:
            raise ValueError(f"unsupported content part type {part.get('type')!r}")
    return {"role": message["role"], "content": parts}
