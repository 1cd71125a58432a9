"""Stable hashes of JSON-able values: the cache keys of labelling work (prompts, fingerprints)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(value: Any, length: int = 16) -> str:
    """Hex SHA-256 of ``value`` as canonical JSON (sorted keys, fixed separators, ASCII).

    Identical across processes, machines and Python versions; tuples hash like lists.

    Example:
        >>> stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": (1, 2), "b": 1})
        True
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:length]
