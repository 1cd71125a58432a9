"""Optional dependencies, imported where they are used (by fsmodel and fslabels alike).

`require("decord", extra="decord")` returns the module, or raises an ImportError that names the
pip extra to install, so users never meet a bare `ModuleNotFoundError` deep in a stack trace.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import `module` or explain which framesel extra provides it.

    Args:
        module: dotted module name, e.g. ``"decord"``.
        extra: the framesel extra that installs it, e.g. ``"decord"``.
        purpose: what needs it, for the message (defaults to the module name).

    Raises:
        ImportError: naming ``pip install 'framesel[extra]'``.

    Example:
        >>> np = require("numpy", extra="dev")
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = purpose or module
        raise ImportError(
            f"{what} needs the '{module}' package, which is not installed. "
            f"Install it with: pip install 'framesel[{extra}]'"
        ) from err
