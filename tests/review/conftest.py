"""Fixtures for the review tests: the real Label Studio server, synthetic videos and a dataset.

The server comes from its own venv (``make setup-labelstudio``: scripts/setup_labelstudio.sh),
named by ``FRAMESEL_LABEL_STUDIO`` (the Makefile sets it) or found at ``.venv-labelstudio``.
Without it the server tests FAIL under ``CI=true`` and are skipped elsewhere. The server starts
once per session on a free port of 127.0.0.1 from a migrated template database (made once per
machine), in its own process group, and is stopped with SIGTERM at the end.

The dataset: three synthetic videos whose frames carry their own index and one coloured shape
over known frames (ground truth), one written as MPEG-4 Part 2 (``mp4v``, which Chromium cannot
play, so export must re-encode it). Rows hold the real candidate frames of `sample_candidates`
and pseudo-labels made so the sources disagree in known ways.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fsmodel.schema import make_sample_id

ON_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
N = 16  # candidates per video


def _need(reason: str) -> None:
    if ON_CI:
        pytest.fail(f"CI must run the review tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def label_studio_executable() -> Path:
    from tests.review.labelstudio_server import default_executable

    found = default_executable()
    if found is None:
        named = os.environ.get("FRAMESEL_LABEL_STUDIO")
        _need(
            f"no Label Studio server at {named or '.venv-labelstudio/bin/label-studio'} "
            f"({'FRAMESEL_LABEL_STUDIO' if named else 'FRAMESEL_LABEL_STUDIO is unset; default'}); "
            "run `make setup-labelstudio` (scripts/setup_labelstudio.sh) or `make test`"
        )
    return found


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    """The server's Local Files document root."""
    return tmp_path_factory.mktemp("ls-media")


@pytest.fixture(scope="session")
def label_studio(label_studio_executable, media_root, tmp_path_factory):
    """A running Label Studio server (LocalLabelStudio: .url, .token, .username, .password)."""
    from tests.review.labelstudio_server import LocalLabelStudio

    server = LocalLabelStudio(
        label_studio_executable, tmp_path_factory.mktemp("ls-server"), document_root=media_root
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ls_client(label_studio):
    from fslabels.review.client import LabelStudio

    with LabelStudio(label_studio.url, label_studio.token) as client:
        yield client


def write_mp4v(path: Path, num_frames: int, events, size=(128, 96), fps: int = 25) -> Path:
    """An OpenCV-style MPEG-4 Part 2 (mp4v) file: decodable, but no browser plays it."""
    import av

    from fsmodel.synthetic import _background, render_frame

    background = _background(*size, 0)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.options = {"qscale": "2"}
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(
                render_frame(i, *size, events, background), format="rgb24"
            )
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def review_videos(tmp_path_factory) -> dict:
    """``{"root": dir, "clips": {video name: (num_frames, event)}}``."""
    from fsmodel.synthetic import Event, write_video

    root = tmp_path_factory.mktemp("review-videos")
    red = Event(30, 59, "circle", "red")
    green = Event(10, 29, "square", "green")
    blue = Event(50, 79, "bar", "blue")
    write_video(root / "red.mp4", num_frames=96, size=(128, 96), events=[red])
    write_mp4v(root / "green.mp4", num_frames=80, events=[green])
    write_video(root / "blue.webm", num_frames=96, size=(128, 96), codec="vp9", events=[blue])
    return {
        "root": root,
        "clips": {"red.mp4": (96, red), "green.mp4": (80, green), "blue.webm": (96, blue)},
    }


def _row(video: str, question: str, candidates, spatial, temporal) -> dict:
    spatial = np.clip(np.asarray(spatial, dtype=np.float64), 0, 1)
    temporal = np.clip(np.asarray(temporal, dtype=np.float64), 0, 1)
    video_id = Path(video).stem
    return {
        "sample_id": make_sample_id(video_id, question),
        "video_id": video_id,
        "video": video,
        "question": question,
        "options": [],
        "answer": "",
        "frame_indices": candidates.indices.tolist(),
        "timestamps": candidates.timestamps.tolist(),
        "spatial": spatial.tolist(),
        "temporal": temporal.tolist(),
        "scores": ((spatial + temporal) / 2).tolist(),
    }


@pytest.fixture(scope="session")
def review_dataset(review_videos, tmp_path_factory) -> Path:
    """A label dataset directory (fslabels.dataset.write_dataset) over the three videos.

    Pseudo-labels: ``spatial`` is high on the event's candidates (the truth), ``temporal`` picks
    candidates shifted 3 positions late; for the "not shown" question both are low. Four rows:
    red/event, red/absent colour, green/event, blue/event.
    """
    from fslabels.dataset import write_dataset
    from fsmodel.video import sample_candidates

    rows = []
    for name, (_, event) in review_videos["clips"].items():
        candidates = sample_candidates(review_videos["root"] / name, num_candidates=N, size=None)
        inside = (candidates.indices >= event.start) & (candidates.indices <= event.end)
        spatial = np.where(inside, 0.9, 0.1) + np.linspace(0, 0.05, N)
        temporal = np.roll(inside, 3).astype(float)
        rows.append(_row(name, event.question, candidates, spatial, temporal))
        if name == "red.mp4":
            rows.append(
                _row(
                    name,
                    "When does the yellow square appear?",
                    candidates,
                    np.full(N, 0.2) + np.linspace(0, 0.1, N),
                    np.zeros(N),
                )
            )
    return write_dataset(
        tmp_path_factory.mktemp("review-dataset") / "labels-v1",
        rows,
        run_config="num_candidates: 16\n",
        note="synthetic pseudo-labels for the review tests",
    )
