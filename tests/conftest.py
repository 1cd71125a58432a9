"""Shared fixtures. Thread counts are pinned before torch is imported anywhere: on two busy cores
one thread is far faster for tiny models."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest


@pytest.fixture(autouse=True, scope="session")
def _torch_one_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def h264_clip(video_dir):
    """100 frames, 64×48, H.264 with B-frames, keyframe every 12 frames, one event."""
    from fsmodel.synthetic import Event, write_video

    return write_video(
        video_dir / "clip.mp4", num_frames=100, gop=12, events=[Event(40, 59, "circle", "red")]
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The offline tiny models (tokenizer, Qwen2-VL, Qwen2), built once per test session."""
    from fsmodel.tiny import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))
