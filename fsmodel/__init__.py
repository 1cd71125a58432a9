"""fsmodel: the frame sampler, the label-dataset contract and the frame selector model.

Importing the package registers the selector with transformers' Auto classes, so
``AutoConfig``/``AutoModel``/``AutoProcessor.from_pretrained(dir)`` load a saved selector without
``trust_remote_code``, and marks the three classes for ``register_for_auto_class`` so
``save_pretrained`` writes ``auto_map`` and copies the code files beside the weights (where
framesel is not installed, ``trust_remote_code=True`` loads them). Other heavy or optional
dependencies (decord, peft, training) are imported where they are used.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoProcessor

from .configuration_frame_selector import FrameSelectorConfig
from .modeling_frame_selector import FrameSelectorModel, FrameSelectorOutput, SelectionResult
from .processing_frame_selector import FrameSelectorProcessor

__version__ = "0.1.0.dev0"

AutoConfig.register(FrameSelectorConfig.model_type, FrameSelectorConfig, exist_ok=True)
AutoModel.register(FrameSelectorConfig, FrameSelectorModel, exist_ok=True)
AutoProcessor.register(FrameSelectorConfig, FrameSelectorProcessor, exist_ok=True)
FrameSelectorConfig.register_for_auto_class()
FrameSelectorModel.register_for_auto_class("AutoModel")
FrameSelectorProcessor.register_for_auto_class()

__all__ = [
    "FrameSelectorConfig",
    "FrameSelectorModel",
    "FrameSelectorOutput",
    "FrameSelectorProcessor",
    "SelectionResult",
    "__version__",
]
