"""fsmodel: the frame sampler, the label-dataset contract and the frame selector model.

Importing the package is cheap: it loads neither torch nor transformers, so the contract layer
(``fsmodel.video``, ``.schema``, ``.selection``, ``.metrics``, ``.synthetic``) serves every
labelling process and Ray actor. The selector's classes are attributes loaded on first use, and
the selector is registered with transformers' Auto classes as soon as transformers loads them
(``fsmodel._auto``): ``import fsmodel`` followed by ``AutoModel.from_pretrained(dir)`` loads a
saved selector without ``trust_remote_code``, and ``save_pretrained`` writes ``auto_map`` and
copies the code files beside the weights (where framesel is not installed,
``trust_remote_code=True`` loads them). Other heavy or optional dependencies (decord, peft,
training) are imported where they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import _auto

__version__ = "0.1.0.dev0"

# public name → the module that defines it (imported on first access, PEP 562)
_LAZY = {
    "FrameSelectorConfig": "configuration_frame_selector",
    "FrameSelectorModel": "modeling_frame_selector",
    "FrameSelectorOutput": "modeling_frame_selector",
    "SelectionResult": "modeling_frame_selector",
    "FrameSelectorProcessor": "processing_frame_selector",
}

if TYPE_CHECKING:
    from .configuration_frame_selector import FrameSelectorConfig
    from .modeling_frame_selector import FrameSelectorModel, FrameSelectorOutput, SelectionResult
    from .processing_frame_selector import FrameSelectorProcessor

_auto.install()


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "FrameSelectorConfig",
    "FrameSelectorModel",
    "FrameSelectorOutput",
    "FrameSelectorProcessor",
    "SelectionResult",
    "__version__",
]
