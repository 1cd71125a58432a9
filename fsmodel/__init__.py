"""fsmodel: the frame sampler, the label-dataset contract and the frame selector model.

Kept lean on purpose: other projects install framesel to load a selector, so heavy or optional
dependencies are imported where they are used, not here.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"
