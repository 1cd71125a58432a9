import numpy as np
import pytest

from fsmodel.synthetic import Event, read_frame_index, render_frame, write_video


@pytest.mark.parametrize("size", [(64, 48), (320, 180), (640, 360)])
def test_index_code_round_trips_through_rendering(size):
    for index in [0, 1, 2, 255, 256, 4095, 36_000, 65_535]:
        assert read_frame_index(render_frame(index, *size)) == index


def test_index_code_survives_resizing():
    from PIL import Image

    frame = render_frame(12_345, 320, 180)
    for w, h in [(64, 36), (43, 24), (448, 252)]:
        small = np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))
        assert read_frame_index(small) == 12_345


def test_unreadable_frame_reports_minus_one():
    gray = np.full((48, 64, 3), 128, np.uint8)
    assert read_frame_index(gray) == -1


def test_events_draw_only_on_their_frames():
    ev = Event(5, 7, "square", "red")
    plain, shown = render_frame(4, events=[ev]), render_frame(5, events=[ev])
    red = np.array([220, 30, 30])
    assert not np.any(np.all(plain == red, axis=-1))
    assert np.any(np.all(shown == red, axis=-1))


def test_event_and_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        Event(0, 1, "hexagon")
    with pytest.raises(ValueError, match="start <= end"):
        Event(5, 2)
    with pytest.raises(ValueError, match="ends after the last frame"):
        write_video(tmp_path / "x.mp4", num_frames=10, events=[Event(5, 10)])
    with pytest.raises(ValueError, match="codec"):
        write_video(tmp_path / "x.mp4", codec="mjpeg2000")


def test_questions_carry_ground_truth(h264_clip):
    (q,) = h264_clip.questions()
    assert q["question"] == "When does the red circle appear?"
    assert q["relevant_frames"] == list(range(40, 60))
