"""Labelling backends, chosen by name from one registry and imported lazily.

    >>> from fslabels.backends import get_backend
    >>> backend = get_backend("transformers", model="/tmp/framesel-tiny/qwen2-vl", batch_size=8)  # doctest: +SKIP

``BACKENDS`` maps a name to ``"module:Class"``; the module is imported only when the backend is
asked for, so ``import fslabels.backends`` needs neither torch nor openai nor vllm.
"""

from __future__ import annotations

from typing import Any

from fslabels._components import lookup, register

from .base import (
    NOT_IN_FINGERPRINT,
    Backend,
    BackendConfig,
    ChatRequest,
    ChatResponse,
    iter_images,
    merge_logprob,
    message_text,
    usage_totals,
)

__all__ = [
    "BACKENDS",
    "NOT_IN_FINGERPRINT",
    "Backend",
    "BackendConfig",
    "ChatRequest",
    "ChatResponse",
    "backend_class",
    "get_backend",
    "iter_images",
    "merge_logprob",
    "message_text",
    "register_backend",
    "usage_totals",
]

BACKENDS: dict[str, str] = {
    "transformers": "fslabels.backends.transformers_backend:TransformersBackend",
    "vllm": "fslabels.backends.vllm_backend:VLLMBackend",
    "openai": "fslabels.backends.openai_backend:OpenAIBackend",
}


def register_backend(name: str, target: str) -> None:
    """Make ``"module:Class"`` available as backend ``name`` (a plugin's own backend).

    Raises:
        ValueError: if ``target`` is not ``"module:Class"`` or ``name`` is taken by another one.
    """
    register(BACKENDS, "backend", name, target)


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (imports its module).

    Raises:
        ValueError: for an unknown name, listing the known ones (and the closest match).
        TypeError: the target is not a `Backend` subclass.
    """
    return lookup(BACKENDS, "backend", name, Backend)


def get_backend(name: str, **config: Any) -> Backend:
    """An (unloaded) backend: ``get_backend("openai", model="gpt-4o-mini", concurrency=16)``.

    Args:
        name: a key of ``BACKENDS``.
        **config: fields of the backend's config dataclass.

    Raises:
        ValueError: unknown name (the known ones are listed) or invalid config values.
        TypeError: unknown config fields.
    """
    return backend_class(name)(**config)
