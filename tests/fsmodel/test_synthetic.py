import itertools

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


def test_the_world_is_fixed_and_its_truth_matches_its_events():
    from collections import Counter

    from fsmodel.synthetic import WORLD, frame_caption, object_name, world_videos

    videos = world_videos(300, seed=1)
    assert world_videos(3, seed=1) == videos[:3]  # seeded
    assert (WORLD.num_candidates, WORLD.num_frames, WORLD.fps) == (32, 96, 8.0)
    sizes = Counter(len(v.events) for v in videos)
    assert set(sizes) <= {3, 4, 5}
    counts = Counter(q.answer for v in videos for q in v.questions if q.kind == "count")
    assert set(counts) == {"1", "2", "3"} and min(counts.values()) > 70  # about uniform
    for video in videos:
        events = video.events
        assert all(b.start - a.end - 1 >= WORLD.spacing for a, b in itertools.pairwise(events))
        assert all((e.end - e.start + 1) in (3, 6, 9) for e in events)
        presence, order, count = video.questions
        assert presence.spans and [q.kind for q in video.questions] == [
            "presence",
            "order",
            "count",
        ]
        subject = [e for e in events if (e.color, e.shape) == order.subject]
        assert len(subject) == 1  # the anchor is shown once
        after = events[events.index(subject[0]) + 1]
        assert order.spans == (video.span(subject[0]), video.span(after))
        assert order.answer == object_name(after.color, after.shape) in order.options
        assert len(set(order.options)) == 4
        occurrences = [e for e in events if (e.color, e.shape) == count.subject]
        assert count.answer == str(len(occurrences)) and len(count.spans) == len(occurrences)
        assert all(frame_caption(events, e.start) == f"a {e.color} {e.shape}" for e in events)


def test_write_world_asks_the_kinds_given_and_writes_its_truth_labels(tmp_path):
    import json

    from fsmodel.schema import load_label_dataset
    from fsmodel.training.synthetic_data import write_world

    world = write_world(tmp_path, 2, seed=3, kinds=["presence", "order"], labels=True)
    truth = [json.loads(line) for line in world["truth"].read_text().splitlines()]
    manifest = [json.loads(line) for line in world["manifest"].read_text().splitlines()]
    assert [r["kind"] for r in truth] == ["presence", "order"] * 2
    assert [(m["video"], m["question"]) for m in manifest] == [
        (r["video"], r["question"]) for r in truth
    ]
    rows = {r["sample_id"]: r for r in load_label_dataset(str(world["labels"]))}
    assert sorted(rows) == sorted(r["sample_id"] for r in truth)
    for record in truth:  # 1.0 exactly on the candidates inside the truth spans
        row = rows[record["sample_id"]]
        inside = [any(s <= t < e for s, e in record["spans"]) for t in row["timestamps"]]
        assert row["scores"] == [float(x) for x in inside] == row["spatial"]
    captions = load_label_dataset(str(world["labels"]), "captions")
    assert captions.num_rows == 2 and len(captions[0]["captions"]) == 32
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        write_world(tmp_path / "bad", 1, kinds=["colour"])


def test_every_presence_asks_about_each_kind_a_video_shows(tmp_path):
    import json

    from fsmodel.synthetic import world_videos
    from fsmodel.training.synthetic_data import write_world

    world = write_world(tmp_path, 2, seed=3, kinds=["presence", "order"], every_presence=True)
    truth = [json.loads(line) for line in world["truth"].read_text().splitlines()]
    for video in world_videos(2, seed=3):
        rows = [r for r in truth if r["video"] == f"{video.video_id}.mp4"]
        shown = list(dict.fromkeys((e.color, e.shape) for e in video.events))
        presence = [r for r in rows if r["kind"] == "presence"]
        assert [r["question"] for r in presence] == [
            f"When does the {c} {s} appear?" for c, s in shown
        ]
        asked = next(q for q in video.questions if q.kind == "presence")  # the drawn one is kept
        assert [list(x) for x in asked.spans] in [r["spans"] for r in presence]
        assert [r["kind"] for r in rows].count("order") == 1
        # each presence row's spans are exactly its kind's events
        for row, (c, s) in zip(presence, shown, strict=True):
            assert row["spans"] == [
                list(video.span(e)) for e in video.events if (e.color, e.shape) == (c, s)
            ]
    assert len({r["sample_id"] for r in truth}) == len(truth)


def test_world_frames_are_what_write_encodes(tmp_path):
    import av

    from fsmodel.synthetic import world_videos

    video = world_videos(1, seed=5)[0]
    video.write(tmp_path / "v.mp4", seed=7)
    with av.open(str(tmp_path / "v.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    indices = [0, video.events[0].start, 94]
    drawn = video.frames(indices, seed=7)
    following = video.frames([i + 1 for i in indices], seed=7)
    for index, frame, next_frame in zip(indices, drawn, following, strict=True):
        error = np.abs(decoded[index].astype(float) - frame).mean()
        assert error < 4, (index, error)  # h264 at crf 16
        assert np.abs(decoded[index].astype(float) - next_frame).mean() > 2.5 * error
