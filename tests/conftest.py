"""Shared fixtures.

Before anything imports torch or the Hugging Face libraries: thread counts are pinned (on two
busy cores one thread is far faster for tiny models), and a local Hub-compatible server
(tests/hubserver.py) is started on 127.0.0.1 with the client environment pointing at it, because
huggingface_hub and datasets read HF_ENDPOINT when they are imported. No test can reach
huggingface.co: every Hub call goes to that server.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.hubserver import HubServer, client_env

_HUB = HubServer()
_HUB_HOME = tempfile.mkdtemp(prefix="framesel-hf-home-")
os.environ.update(client_env(_HUB.start(), _HUB_HOME, token=_HUB.token))
atexit.register(shutil.rmtree, _HUB_HOME, ignore_errors=True)
atexit.register(_HUB.stop)

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked ``first`` run first (the order is otherwise kept): under xdist a worker
    starts the longest test at once while the other works through the rest, instead of
    starting it last and running it alone."""
    items.sort(key=lambda item: item.get_closest_marker("first") is None)


@pytest.fixture(scope="session")
def hub() -> HubServer:
    """The local Hub server every Hugging Face client in the tests talks to."""
    return _HUB


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
