"""Backends over the offline tiny models, loaded once per session (loading dominates test time)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def vl_backend(tiny_models):
    """The real transformers backend over the tiny Qwen2-VL (image-text)."""
    from fslabels.backends import get_backend

    backend = get_backend("transformers", model=str(tiny_models["qwen2-vl"]), batch_size=4)
    backend.load()
    yield backend
    backend.unload()


@pytest.fixture(scope="session")
def text_backend(tiny_models):
    """The real transformers backend over the tiny Qwen2 (text)."""
    from fslabels.backends import get_backend

    backend = get_backend("transformers", model=str(tiny_models["qwen2"]), batch_size=4)
    backend.load()
    yield backend
    backend.unload()


@pytest.fixture(scope="session")
def similarity_model(tiny_models, tmp_path_factory):
    """A tiny SigLIP (image and text towers) for the similarity scorer."""
    from fsmodel.tiny import build_tiny_similarity

    return build_tiny_similarity(
        tmp_path_factory.mktemp("tiny-similarity") / "siglip", tiny_models["tokenizer"]
    )


@pytest.fixture(scope="session")
def vocab_size(tiny_models) -> int:
    """Asking for this many alternatives returns the whole next-token distribution."""
    import json

    config = json.loads((tiny_models["qwen2"] / "config.json").read_text())
    return int(config["vocab_size"])


@pytest.fixture
def frames() -> np.ndarray:
    """Four random RGB uint8 frames, 48x64."""
    return np.random.default_rng(0).integers(0, 256, size=(4, 48, 64, 3), dtype=np.uint8)
