"""A transformers backend that fails on purpose, for the engine tests: a plugin registered by
name (``fslabels.backends.register_backend``), imported by Ray workers like any plugin.

A request whose text holds one of ``faults``' markers makes ``generate``:

- ``"exit-once"``: end its process at once (``os._exit``, as an OOM kill or a segfault would),
  the first time only (a marker file in ``marker_dir`` remembers it); later calls work;
- ``"exit"``: end its process, every time (a poisoned item);
- ``"raise"``: raise ``RuntimeError`` (a bug on one item).

Requests without a marker are served by the real transformers backend, so its labels equal the
transformers backend's. The faults are not in the fingerprint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fslabels.backends import NOT_IN_FINGERPRINT, ChatRequest, ChatResponse, message_text
from fslabels.backends.transformers_backend import TransformersBackend, TransformersConfig

FAULTY = "faulty-transformers"
TARGET = "tests.fslabels.faulty_backend:FaultyBackend"
EXIT_CODE = 17


@dataclass
class FaultyConfig(TransformersConfig):
    faults: dict[str, str] = field(default_factory=dict, metadata=NOT_IN_FINGERPRINT)
    marker_dir: str = field(default="", metadata=NOT_IN_FINGERPRINT)


class FaultyBackend(TransformersBackend):
    name = FAULTY
    config_class = FaultyConfig

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        for request in requests:
            text = " ".join(message_text(m["content"]) for m in request.messages)
            for marker, mode in self.config.faults.items():
                if marker in text:
                    self._fault(marker, mode)
        return super().generate(requests)

    def _fault(self, marker: str, mode: str) -> Any:
        if mode == "raise":
            raise RuntimeError(f"poisoned request {marker!r}")
        if mode == "exit-once":
            done = Path(self.config.marker_dir) / hashlib.sha1(marker.encode()).hexdigest()
            if done.exists():
                return None
            done.touch()
        os._exit(EXIT_CODE)
