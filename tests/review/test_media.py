"""Browser clips and gallery frames: exact frames, playable codecs."""

from __future__ import annotations

import av
import numpy as np
import pytest

from fslabels.review.media import browser_clip, candidate_images, contact_sheet
from fsmodel.synthetic import Event, read_frame_index, write_video
from tests.review.conftest import write_mp4v


def _decoded(path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            (float(f.pts * stream.time_base), f.to_ndarray(format="rgb24"))
            for f in container.decode(stream)
        ]


def test_mp4v_is_reencoded_to_vp9_webm_frame_for_frame(tmp_path):
    source = write_mp4v(tmp_path / "in.mp4", 40, [Event(10, 19, "square", "green")])
    clip = browser_clip(source, tmp_path / "out")
    assert clip.name == "clip.webm"
    with av.open(str(clip)) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
    frames = _decoded(clip)
    assert len(frames) == 40
    assert [read_frame_index(img) for _, img in frames] == list(range(40))
    assert [round(t * 25) for t, _ in frames] == list(range(40))  # each frame at its own time


def test_playable_h264_is_copied(tmp_path):
    source = write_video(tmp_path / "in.mp4", num_frames=12, size=(64, 48))
    clip = browser_clip(source.path, tmp_path / "out")
    assert clip.name == "clip.mp4" and clip.read_bytes() == source.path.read_bytes()


def test_candidate_images_are_the_labelled_frames_or_a_clear_error(tmp_path):
    source = write_video(tmp_path / "in.mp4", num_frames=30, size=(64, 48))
    from fsmodel.video import candidate_indices

    frames, candidates = candidate_images(source.path, candidate_indices(30, 8).tolist())
    assert [read_frame_index(f) for f in frames] == candidates.indices.tolist()
    with pytest.raises(ValueError, match=r"candidate 0 is frame 1 now, frame 0 in the dataset"):
        candidate_images(source.path, [0] * 8)
    sheet = contact_sheet(frames, candidates.indices, np.linspace(0, 1, 8), columns=4)
    assert sheet[:2] == b"\xff\xd8"  # JPEG
