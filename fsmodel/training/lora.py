"""Stage-2 LoRA on the selector's LLM through peft: wrap, save the adapter, load it, merge it.

The adapter covers the LLM's linear layers (LoRA) and, as peft ``modules_to_save``, the other
trained modules (score head, and the projector if trained). The score query is a bare
``nn.Parameter``, which ``modules_to_save`` cannot hold, so it is saved beside the adapter in
``selector_parameters.safetensors`` and restored by `load_adapter`.

Example:
    >>> peft_model = add_lora(selector, LoraSettings(r=16), trainable=["score_query", "score_head"])
    >>> save_adapter(peft_model, "runs/s2/adapter")
    >>> merged = merge_adapter(load_adapter("runs/s1/final", "runs/s2/adapter"))
    >>> merged.save_pretrained("runs/s2/final")  # loads with plain AutoModel.from_pretrained
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peft import PeftModel

    from fsmodel.modeling_frame_selector import FrameSelectorModel
    from fsmodel.training.config import LoraSettings

__all__ = ["SELECTOR_PARAMETERS", "add_lora", "load_adapter", "merge_adapter", "save_adapter"]

# Trained bare parameters of the selector, saved beside the peft adapter.
SELECTOR_PARAMETERS = "selector_parameters.safetensors"
_BARE_PARAMETERS = ("score_query",)


def _peft():
    from fsmodel._imports import require

    return require("peft", extra="train", purpose="LoRA training (stage 2)")


def add_lora(
    model: FrameSelectorModel, settings: LoraSettings, trainable: Sequence[str] = ()
) -> PeftModel:
    """Wrap ``model`` in a peft model with LoRA on its LLM's ``settings.target_modules``.

    Args:
        model: the selector (stage-1 result); its weights are frozen by peft.
        settings: rank, alpha, dropout and target modules.
        trainable: other parts to train fully: modules (``score_head``, ``projector``,
            ``vision_model``) become ``modules_to_save``; ``score_query`` stays trainable.

    Returns:
        The `peft.PeftModel`; only the adapter and ``trainable`` require gradients.

    Raises:
        ImportError: without peft (``pip install 'framesel[train]'``).
        ValueError: ``language_model`` in ``trainable`` (LoRA is how stage 2 trains it), or no
            LLM module matching ``target_modules``.
    """
    peft = _peft()
    if "language_model" in trainable:
        raise ValueError("trainable must not contain 'language_model': LoRA trains the LLM")
    names = "|".join(re.escape(m) for m in settings.target_modules)
    # Only the LLM's layers: the vision tower has q/k/v projections with the same names.
    pattern = rf"language_model\..*\.({names})"
    if not any(re.fullmatch(pattern, name) for name, _ in model.named_modules()):
        raise ValueError(
            f"no module of the LLM matches lora.target_modules = {list(settings.target_modules)}"
        )
    config = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=pattern,
        modules_to_save=[p for p in trainable if p not in _BARE_PARAMETERS] or None,
    )
    wrapped = peft.get_peft_model(model, config)
    base = wrapped.get_base_model()
    for name in _BARE_PARAMETERS:
        getattr(base, name).requires_grad_(name in trainable)
    return wrapped


def save_adapter(model: PeftModel, out_dir: str | os.PathLike) -> Path:
    """Save the adapter (peft's ``adapter_model.safetensors`` + ``adapter_config.json``) and the
    trained bare parameters (`SELECTOR_PARAMETERS`)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    model.save_pretrained(out)
    base = model.get_base_model()
    bare = {
        name: getattr(base, name).detach().cpu().contiguous()
        for name in _BARE_PARAMETERS
        if getattr(base, name).requires_grad
    }
    if bare:
        save_file(bare, out / SELECTOR_PARAMETERS)
    return out


def load_adapter(
    base: str | os.PathLike | FrameSelectorModel,
    adapter_dir: str | os.PathLike,
    **from_pretrained: Any,
) -> PeftModel:
    """Load a saved adapter onto its base selector (a directory / repo id, or a model).

    Returns:
        The `peft.PeftModel` in eval mode, scoring exactly like the model that was saved.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    peft = _peft()
    import fsmodel  # noqa: F401  (registers the selector with AutoModel)

    if not hasattr(base, "named_parameters"):
        base = AutoModel.from_pretrained(base, **from_pretrained)
    model = peft.PeftModel.from_pretrained(base, str(adapter_dir))
    extras = Path(adapter_dir) / SELECTOR_PARAMETERS
    if extras.is_file():
        inner = model.get_base_model()
        with torch.no_grad():
            for name, value in load_file(extras).items():
                getattr(inner, name).copy_(value)
    return model.eval()


def merge_adapter(model: PeftModel) -> FrameSelectorModel:
    """Fold LoRA into the LLM's weights and unwrap the ``modules_to_save`` copies: a plain
    `FrameSelectorModel` that ``save_pretrained`` writes and ``AutoModel`` loads without peft.
    The peft model is consumed (its weights are merged in place)."""
    merged = model.merge_and_unload()
    for param in merged.parameters():
        param.requires_grad_(False)
    return merged
