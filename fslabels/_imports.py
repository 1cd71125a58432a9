"""Optional dependencies of fslabels, imported where they are used.

fslabels may import only ``fsmodel.video`` and ``fsmodel.schema`` from fsmodel (see DESIGN.md), so
it keeps this copy of ``fsmodel._imports.require`` instead of importing that one.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ImportError naming ``pip install 'framesel[extra]'``.

    Example:
        >>> openai = require("openai", extra="openai", purpose="the openai backend")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose or module} needs the '{module}' package, which is not installed. "
            f"Install it with: pip install 'framesel[{extra}]'"
        ) from err
