"""Frame exactness is proven by reading back the index each synthetic frame carries."""

import logging
import wave

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsmodel.synthetic import Event, read_frame_index, rotate_video, trim_video, write_video
from fsmodel.video import (
    READERS,
    VideoError,
    candidate_indices,
    get_reader,
    probe,
    sample_candidates,
)

READER_NAMES = ["pyav", "decord"]


def read_back(frames: np.ndarray) -> np.ndarray:
    return np.array([read_frame_index(f) for f in frames])


# --- the candidate rule -------------------------------------------------------------------------


@given(st.integers(1, 200_000), st.integers(1, 512))
def test_candidate_rule_matches_design_formula(num_frames, n):
    idx = candidate_indices(num_frames, n)
    assert idx.shape == (n,)
    assert idx.min() >= 0 and idx.max() <= num_frames - 1
    assert np.all(np.diff(idx) >= 0)
    expected = [min(num_frames - 1, int(np.floor((i + 0.5) * num_frames / n))) for i in (0, n - 1)]
    assert [idx[0], idx[-1]] == expected
    if num_frames >= n:
        assert len(np.unique(idx)) == n  # no repeats when the video is long enough


def test_candidate_rule_small_cases():
    assert candidate_indices(10, 10).tolist() == list(range(10))
    assert candidate_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert candidate_indices(100, 4).tolist() == [12, 37, 62, 87]
    with pytest.raises(ValueError, match="num_frames"):
        candidate_indices(0, 4)


# --- exactness ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(video_dir):
    c = {}
    c["h264"] = write_video(video_dir / "v_h264.mp4", num_frames=100, gop=12)
    c["vp9"] = write_video(video_dir / "v_vp9.webm", num_frames=100, codec="vp9", gop=12)
    # Open GOPs: B-frames shown before a keyframe reference the previous group of pictures.
    c["h264-open-gop"] = write_video(
        video_dir / "v_open.mp4", num_frames=100, gop=12, options={"x264-params": "open-gop=1"}
    )
    c["av1"] = write_video(video_dir / "v_av1.mp4", num_frames=40, codec="av1", gop=12)
    durations = [100] * 20 + [20] * 40  # a slow start, then fast: far from constant rate
    c["vfr"] = write_video(video_dir / "v_vfr.mp4", num_frames=60, frame_durations_ms=durations)
    c["short"] = write_video(video_dir / "v_short.mp4", num_frames=20, gop=5)
    return c


@pytest.mark.parametrize("reader", READER_NAMES)
@pytest.mark.parametrize("codec", ["h264", "vp9", "h264-open-gop"])
@pytest.mark.parametrize("n", [7, 16, 100, 128])
def test_frames_are_exact(clips, reader, codec, n):
    clip = clips[codec]
    cands = sample_candidates(clip.path, n, size=None, reader=reader)
    # decord returns wrong frames around open-GOP keyframes, so those files go to PyAV.
    assert cands.reader == ("pyav" if codec == "h264-open-gop" else reader)
    assert cands.frames.shape == (n, 48, 64, 3) and cands.frames.dtype == np.uint8
    assert cands.indices.tolist() == candidate_indices(100, n).tolist()
    assert read_back(cands.frames).tolist() == cands.indices.tolist()
    # WebM stores milliseconds, so its presentation times are the CFR times rounded to 1 ms.
    np.testing.assert_allclose(cands.timestamps, cands.indices / 30.0, atol=1e-3)
    assert cands.num_frames == 100
    assert cands.fps == pytest.approx(30.0)
    assert cands.duration == pytest.approx(100 / 30)


@pytest.mark.parametrize("reader", READER_NAMES)
def test_resized_frames_stay_exact(clips, reader):
    cands = sample_candidates(clips["h264"].path, 32, size=32, reader=reader)
    assert cands.frames.shape[1:] == (32, 43, 3)
    assert read_back(cands.frames).tolist() == cands.indices.tolist()


@pytest.mark.parametrize("reader", READER_NAMES)
def test_variable_frame_rate_uses_presentation_times(clips, reader):
    clip = clips["vfr"]
    cands = sample_candidates(clip.path, 25, size=None, reader=reader)
    assert read_back(cands.frames).tolist() == cands.indices.tolist()
    truth = np.array(clip.timestamps)[cands.indices]
    np.testing.assert_allclose(cands.timestamps, truth, atol=1e-3)
    # index / fps would be off by up to ~0.3 s here: the proof that timestamps come from pts.
    assert np.abs(cands.indices / cands.fps - truth).max() > 0.05


@pytest.mark.parametrize("reader", READER_NAMES)
def test_short_video_repeats_frames(clips, reader):
    cands = sample_candidates(clips["short"].path, 32, size=None, reader=reader)
    assert len(cands) == 32
    assert set(cands.indices.tolist()) == set(range(20))
    assert read_back(cands.frames).tolist() == cands.indices.tolist()


def test_trimmed_clip_with_edit_list(clips, video_dir, caplog):
    """A stream-copied trim keeps hidden frames before the cut; frame 0 must be the cut point."""
    trimmed = trim_video(clips["h264"].path, video_dir / "v_trim.mp4", start_frame=17)
    info = probe(trimmed)
    assert info.edit_list and info.num_frames == 83
    cands = sample_candidates(trimmed, 16, size=None, reader="pyav")
    assert (read_back(cands.frames) - 17).tolist() == cands.indices.tolist()
    assert cands.timestamps[0] == pytest.approx(cands.indices[0] / 30, abs=1e-6)
    with caplog.at_level(logging.WARNING, logger="fsmodel.video"):
        via_decord = sample_candidates(trimmed, 16, size=None, reader="decord")
    assert via_decord.reader == "pyav"  # decord would return wrong frames here
    assert "edit lists" in caplog.text
    np.testing.assert_array_equal(via_decord.frames, cands.frames)


def test_open_gop_is_detected_and_decord_really_is_wrong_there(clips):
    assert probe(clips["h264-open-gop"].path).open_gop
    assert not probe(clips["h264"].path).open_gop
    decord = pytest.importorskip("decord")
    vr = decord.VideoReader(str(clips["h264-open-gop"].path))
    try:
        wanted = candidate_indices(len(vr), 16)
        got = read_back(vr.get_batch(wanted.tolist()).asnumpy())
    finally:
        del vr
    assert got.tolist() != wanted.tolist()  # if decord gets fixed, the guard can go


def test_decord_really_is_wrong_on_edit_lists(clips, video_dir):
    """Keeps the guard honest: if decord ever handles edit lists, this fails and the guard can go."""
    decord = pytest.importorskip("decord")
    trimmed = trim_video(clips["h264"].path, video_dir / "v_trim2.mp4", start_frame=17)
    vr = decord.VideoReader(str(trimmed))
    try:
        assert len(vr) != probe(trimmed).num_frames
    finally:
        del vr


@pytest.mark.parametrize("degrees", [90, 180, 270])
@pytest.mark.parametrize("reader", READER_NAMES)
def test_rotated_stream_is_turned_upright(clips, video_dir, degrees, reader):
    rotated = rotate_video(clips["h264"].path, video_dir / f"v_rot{degrees}.mp4", degrees)
    assert probe(rotated).rotation == degrees
    cands = sample_candidates(rotated, 8, size=None, reader=reader)
    expected_shape = (64, 48, 3) if degrees in (90, 270) else (48, 64, 3)
    assert cands.frames.shape[1:] == expected_shape
    # Undo the display turn (clockwise) to read the code the encoder wrote.
    stored = [np.rot90(f, k=degrees // 90) for f in cands.frames]
    assert read_back(np.stack(stored)).tolist() == cands.indices.tolist()


def test_av1_decodes_and_decord_defers(clips):
    cands = sample_candidates(clips["av1"].path, 8, size=None, reader="decord")
    assert cands.reader == "pyav"
    assert read_back(cands.frames).tolist() == cands.indices.tolist()


# --- keyframe mode ------------------------------------------------------------------------------


def test_keyframe_mode_snaps_and_reports_offsets(clips):
    exact = sample_candidates(clips["h264"].path, 16, size=None)
    fast = sample_candidates(clips["h264"].path, 16, size=None, mode="keyframe")
    assert fast.mode == "keyframe"
    assert np.all(fast.indices % 12 == 0)  # the clip has a keyframe every 12 frames
    assert fast.target_indices.tolist() == exact.indices.tolist()
    assert np.array_equal(fast.offsets, fast.indices - exact.indices)
    assert np.abs(fast.offsets).max() <= 6
    assert read_back(fast.frames).tolist() == fast.indices.tolist()
    np.testing.assert_allclose(fast.timestamps, fast.indices / 30, atol=1e-6)


def test_keyframe_mode_is_pyav_only(clips):
    with pytest.raises(NotImplementedError, match="pyav"):
        sample_candidates(clips["h264"].path, 4, reader="decord", mode="keyframe")


# --- arguments and bad input --------------------------------------------------------------------


def test_argument_errors(clips):
    path = clips["h264"].path
    with pytest.raises(ValueError, match=r"unknown reader 'nope'.*decord.*pyav"):
        sample_candidates(path, 4, reader="nope")
    with pytest.raises(ValueError, match="unknown mode"):
        sample_candidates(path, 4, mode="fast")
    with pytest.raises(ValueError, match="num_candidates"):
        sample_candidates(path, 0)
    with pytest.raises(ValueError, match="size"):
        sample_candidates(path, 4, size=-3)
    assert set(READERS) >= {"pyav", "decord"}
    assert get_reader("pyav").name == "pyav"


def _bad_files(src_mp4, src_webm, d):
    data, webm = src_mp4.read_bytes(), src_webm.read_bytes()
    files = {}
    files["missing"] = (d / "missing.mp4", "no such file")
    (d / "empty.mp4").write_bytes(b"")
    files["empty"] = (d / "empty.mp4", "is empty")
    files["directory"] = (d, "is a directory")
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    files["not a video"] = (d / "text.mp4", "not a readable video")
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov atom (at the end) lost
    files["truncated mp4"] = (d / "cut.mp4", "not a readable video")
    (d / "cut.webm").write_bytes(webm[: len(webm) // 2])
    files["truncated webm"] = (d / "cut.webm", "truncated")
    bad_header = bytearray(data)
    bad_header[:256] = b"\0" * 256
    (d / "header.mp4").write_bytes(bytes(bad_header))
    files["corrupt header"] = (d / "header.mp4", "not a readable video")
    mangled = bytearray(data)
    rng = np.random.default_rng(0)
    for at in range(2000, len(data) - 3000, 50):
        mangled[at : at + 20] = rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    (d / "mangled.mp4").write_bytes(bytes(mangled))
    files["corrupt data"] = (d / "mangled.mp4", "corrupt")
    cluster = webm.find(b"\x1f\x43\xb6\x75")  # first Matroska cluster: no frames before it
    (d / "noframes.webm").write_bytes(webm[:cluster])
    files["zero frames"] = (d / "noframes.webm", "not a readable video")
    with wave.open(str(d / "audio.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    files["audio only"] = (d / "audio.wav", "has no video stream (found: audio)")
    return files


BAD_CASES = [
    "missing",
    "empty",
    "directory",
    "not a video",
    "truncated mp4",
    "truncated webm",
    "corrupt header",
    "corrupt data",
    "zero frames",
    "audio only",
]


@pytest.fixture(scope="module")
def bad_files(clips, tmp_path_factory):
    return _bad_files(clips["h264"].path, clips["vp9"].path, tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("reader", READER_NAMES)
@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_raises_one_clear_error(bad_files, case, reader):
    path, cause = bad_files[case]
    with pytest.raises(VideoError) as info:
        sample_candidates(path, 16, size=None, reader=reader)
    assert str(path) in str(info.value)
    assert cause in info.value.cause
    assert isinstance(info.value, ValueError)


def test_audio_only_mp4_container(tmp_path):
    import av

    with av.open(str(tmp_path / "a.m4a"), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(5):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            c.mux(s.encode(fr))
        c.mux(s.encode(None))
    with pytest.raises(VideoError, match="has no video stream"):
        probe(tmp_path / "a.m4a")


def test_missing_decord_names_the_extra(monkeypatch, clips):
    import sys

    monkeypatch.setitem(sys.modules, "decord", None)
    with pytest.raises(ImportError, match=r"pip install 'framesel\[decord\]'"):
        sample_candidates(clips["h264"].path, 4, reader="decord")


def test_event_frames_are_where_the_generator_put_them(video_dir):
    clip = write_video(
        video_dir / "ev.mp4", num_frames=64, events=[Event(16, 31, "square", "green")]
    )
    cands = sample_candidates(clip.path, 64, size=None)
    green = np.array([30, 200, 60])
    shows = [bool(np.any(np.abs(f.astype(int) - green).sum(-1) < 60)) for f in cands.frames]
    assert [i for i, s in enumerate(shows) if s] == list(range(16, 32))
