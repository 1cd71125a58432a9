"""Synthetic test videos with known content: every frame carries its own index, and optional
"events" (a coloured shape over a known frame range) give ground truth for question relevance.

Tests, the demo and the benchmarks encode these themselves, so nothing is downloaded and every
claim about frame exactness can be checked by reading the index back from the pixels.

Layout of a frame (any size ≥ 32×24): the top third is a 2×8 grid of cells holding the 16-bit
frame index (white = 1, black = 0, least significant bit first); the rest is a textured
background on which events draw their shape.

Example:
    >>> from fsmodel.synthetic import Event, write_video, read_frame_index
    >>> clip = write_video("clip.mp4", num_frames=90, events=[Event(30, 44, "circle", "red")])
    >>> clip.questions()[0]["question"]
    'When does the red circle appear?'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

CODE_BITS = 16
_CODE_COLS = 8
_CODE_ROWS = CODE_BITS // _CODE_COLS
_WHITE, _BLACK = 235, 16

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 60),
    "blue": (40, 70, 230),
    "yellow": (235, 220, 40),
    "magenta": (220, 40, 200),
    "cyan": (40, 210, 220),
}
SHAPES = ("square", "circle", "bar")

# Container and encoder for each codec name the generator accepts.
_CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": ("mp4", "libx264", {"preset": "ultrafast", "crf": "16", "bf": "2"}),
    "vp9": ("webm", "libvpx-vp9", {"crf": "12", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
    "av1": ("mp4", "libsvtav1", {"preset": "11", "crf": "20"}),
}


@dataclass(frozen=True)
class Event:
    """A coloured shape visible on frames ``start..end`` (inclusive).

    Args:
        start: first frame index showing the shape.
        end: last frame index showing the shape (inclusive).
        shape: one of ``SHAPES``.
        color: one of ``COLORS``.
    """

    start: int
    end: int
    shape: str = "square"
    color: str = "red"

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"Event frames {self.start}..{self.end}: need 0 <= start <= end")
        if self.shape not in SHAPES:
            raise ValueError(f"Event shape {self.shape!r} is not one of {SHAPES}")
        if self.color not in COLORS:
            raise ValueError(f"Event color {self.color!r} is not one of {sorted(COLORS)}")

    @property
    def question(self) -> str:
        return f"When does the {self.color} {self.shape} appear?"

    def frames(self) -> range:
        return range(self.start, self.end + 1)


@dataclass
class SyntheticVideo:
    """What was written: enough to check any reader against the truth."""

    path: Path
    num_frames: int
    width: int
    height: int
    codec: str
    fps: float
    timestamps: list[float]
    events: list[Event] = field(default_factory=list)

    def questions(self) -> list[dict[str, Any]]:
        """One question per event, with the frames that answer it."""
        return [
            {"question": ev.question, "relevant_frames": list(ev.frames()), "event": ev}
            for ev in self.events
        ]


def _code_cells(width: int, height: int) -> list[tuple[slice, slice]]:
    # Boundaries are fractions of the frame, so they stay aligned when the frame is resized.
    def edges(length: float, parts: int) -> list[int]:
        return [round(k * length / parts) for k in range(parts + 1)]

    ys, xs = edges(height / 3, _CODE_ROWS), edges(width, _CODE_COLS)
    return [
        (slice(ys[r], ys[r + 1]), slice(xs[c], xs[c + 1]))
        for r in range(_CODE_ROWS)
        for c in range(_CODE_COLS)
    ]


def _background(width: int, height: int, seed: int) -> np.ndarray:
    # A smooth texture plus mild noise: scrolling it makes every frame differ, so the encoder
    # does real work (like camera footage) without the noise hurting readability of the code.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0 : 2 * width]
    base = 70 + 30 * np.sin(xx / 11.0) + 25 * np.cos(yy / 7.0)
    tex = np.stack([base, base * 0.9 + 10, base * 0.8 + 20], axis=-1)
    tex += rng.normal(0, 4, tex.shape)
    return np.clip(tex, 0, 255).astype(np.uint8)


def _draw_event(img: np.ndarray, ev: Event, slot: int) -> None:
    h, w = img.shape[:2]
    top = h // 3
    size = max(4, min(h - top, w) // 3)
    # Spread concurrent events over horizontal slots so they do not overlap.
    cx = int((0.2 + 0.3 * (slot % 3)) * w)
    cy = top + (h - top) // 2
    y0, y1 = max(top, cy - size // 2), min(h, cy + size // 2)
    x0, x1 = max(0, cx - size // 2), min(w, cx + size // 2)
    color = np.array(COLORS[ev.color], np.uint8)
    if ev.shape == "square":
        img[y0:y1, x0:x1] = color
    elif ev.shape == "bar":
        img[y0 + (y1 - y0) // 3 : y1 - (y1 - y0) // 3, max(0, x0 - size // 2) : x1] = color
    else:
        yy, xx = np.mgrid[y0:y1, x0:x1]
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 2) ** 2
        img[y0:y1, x0:x1][mask] = color


def render_frame(
    index: int,
    width: int = 64,
    height: int = 48,
    events: list[Event] | tuple[Event, ...] = (),
    background: np.ndarray | None = None,
) -> np.ndarray:
    """The RGB uint8 frame ``index`` of a synthetic video (index code, background, events)."""
    if not 0 <= index < 2**CODE_BITS:
        raise ValueError(f"frame index {index} does not fit in {CODE_BITS} bits")
    if background is None:
        background = _background(width, height, 0)
    shift = (index * 3) % width
    img = np.ascontiguousarray(background[:, shift : shift + width])
    for bit, (ys, xs) in enumerate(_code_cells(width, height)):
        img[ys, xs] = _WHITE if (index >> bit) & 1 else _BLACK
    for slot, ev in enumerate(events):
        if ev.start <= index <= ev.end:
            _draw_event(img, ev, slot)
    return img


def read_frame_index(frame: np.ndarray) -> int:
    """Read back the index that `render_frame` encoded (the frame may be resized).

    Returns -1 when a cell is ambiguous (neither clearly white nor clearly black), which means
    the frame is not an upright synthetic frame, or it is damaged.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame [H, W, 3], got shape {frame.shape}")
    h, w = frame.shape[:2]
    gray = frame.astype(np.float32).mean(axis=2)
    value = 0
    for bit, (ys, xs) in enumerate(_code_cells(w, h)):
        # The cell's central half only: resizing blurs the borders between cells.
        y0, y1, x0, x1 = ys.start, ys.stop, xs.start, xs.stop
        dy, dx = max(1, (y1 - y0) // 4), max(1, (x1 - x0) // 4)
        level = float(
            gray[y0 + dy : max(y0 + dy + 1, y1 - dy), x0 + dx : max(x0 + dx + 1, x1 - dx)].mean()
        )
        if level > 170:
            value |= 1 << bit
        elif level >= 80:
            return -1
    return value


def write_video(
    path: str | Path,
    num_frames: int = 60,
    size: tuple[int, int] = (64, 48),
    fps: float = 30.0,
    codec: str = "h264",
    gop: int = 12,
    events: list[Event] | tuple[Event, ...] = (),
    frame_durations_ms: list[int] | None = None,
    seed: int = 0,
    options: dict[str, str] | None = None,
    progress: bool = False,
) -> SyntheticVideo:
    """Encode a synthetic video whose frame i shows index i (and the events covering i).

    Args:
        path: output file; the container follows the codec (``.mp4`` for h264/av1, ``.webm`` for vp9).
        num_frames: frames to encode.
        size: ``(width, height)``, both even.
        fps: nominal frame rate (constant frame rate unless ``frame_durations_ms`` is given).
        codec: ``"h264"``, ``"vp9"`` or ``"av1"``.
        gop: keyframe interval in frames.
        events: coloured shapes over known frame ranges (ground truth for questions).
        frame_durations_ms: per-frame durations for a variable-frame-rate video (length
            ``num_frames``); presentation times are their running sum, starting at 0.
        seed: background texture seed.
        options: encoder options overriding the defaults (e.g. ``{"preset": "veryfast"}``).
        progress: show a progress bar (long benchmark videos).

    Returns:
        A `SyntheticVideo` describing what was written, with exact presentation timestamps.

    Raises:
        ValueError: on an unknown codec, odd size, or inconsistent durations.
    """
    import av

    if codec not in _CODECS:
        raise ValueError(f"codec {codec!r} is not one of {sorted(_CODECS)}")
    width, height = size
    if width % 2 or height % 2 or width < 32 or height < 24:
        raise ValueError(f"size {size}: width and height must be even and at least 32×24")
    if frame_durations_ms is not None and len(frame_durations_ms) != num_frames:
        raise ValueError(
            f"frame_durations_ms has {len(frame_durations_ms)} entries for {num_frames} frames"
        )
    for ev in events:
        if ev.end >= num_frames:
            raise ValueError(f"{ev} ends after the last frame ({num_frames - 1})")
    container_format, encoder, defaults = _CODECS[codec]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    rate = Fraction(fps).limit_denominator(1001)
    if frame_durations_ms is None:
        time_base = 1 / rate
        pts = list(range(num_frames))
    else:
        time_base = Fraction(1, 1000)
        pts = np.concatenate([[0], np.cumsum(frame_durations_ms)[:-1]]).astype(int).tolist()
    timestamps = [float(p * time_base) for p in pts]

    background = _background(width, height, seed)
    container = av.open(str(path), "w", format=container_format)
    try:
        stream = container.add_stream(encoder, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {**defaults, **(options or {})}
        frames = range(num_frames)
        if progress:
            from rich.progress import track

            frames = track(frames, description=f"encoding {path.name}")
        for i in frames:
            frame = av.VideoFrame.from_ndarray(
                render_frame(i, width, height, events, background), format="rgb24"
            )
            frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    finally:
        container.close()
    return SyntheticVideo(
        path=path,
        num_frames=num_frames,
        width=width,
        height=height,
        codec=codec,
        fps=float(rate)
        if frame_durations_ms is None
        else num_frames / (sum(frame_durations_ms) / 1000),
        timestamps=timestamps,
        events=list(events),
    )


def trim_video(src: str | Path, dst: str | Path, start_frame: int) -> Path:
    """Stream-copy ``src`` from ``start_frame`` on, the way ``ffmpeg -ss T -c copy`` does.

    The copy starts at the keyframe before ``start_frame``; the packets before it get negative
    timestamps, so the mp4 muxer writes an edit list that hides them. Decoders that honour edit
    lists show frame ``start_frame`` first; readers that ignore them return extra frames.
    """
    import av

    src, dst = Path(src), Path(dst)
    with av.open(str(src)) as inp:
        ist = inp.streams.video[0]
        packets = [p for p in inp.demux(ist) if p.size]
        order = sorted(p.pts for p in packets)
        if not 0 <= start_frame < len(order):
            raise ValueError(f"start_frame {start_frame} outside 0..{len(order) - 1}")
        start_pts = order[start_frame]
        first = max(i for i, p in enumerate(packets) if p.is_keyframe and p.pts <= start_pts)
        with av.open(str(dst), "w") as out:
            ost = out.add_stream_from_template(ist)
            for p in packets[first:]:
                p.pts -= start_pts
                p.dts -= start_pts
                p.stream = ost
                out.mux(p)
    return dst


def rotate_video(src: str | Path, dst: str | Path, degrees: int) -> Path:
    """Copy an mp4 and set its display matrix to a clockwise rotation of ``degrees`` (90, 180, 270).

    Phones record this way: the pixels are stored landscape and the track header says how to
    turn them for display. The matrix is patched in place in the ``tkhd`` box.
    """
    matrices = {
        90: (0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30),
        180: (-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30),
        270: (0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30),
    }
    if degrees not in matrices:
        raise ValueError(f"degrees must be one of {sorted(matrices)}, got {degrees}")
    data = bytearray(Path(src).read_bytes())
    at = data.find(b"tkhd")
    if at < 0:
        raise ValueError(f"{src}: no tkhd box (not an mp4?)")
    version = data[at + 4]
    # size/type | version+flags | times, track id, reserved, duration | reserved | layer..volume
    offset = at + 4 + 4 + (20 if version == 0 else 32) + 8 + 8
    data[offset : offset + 36] = struct.pack(">9i", *matrices[degrees])
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


# --- the video-QA world ---------------------------------------------------------------------
#
# A small world with ground truth, fixed up front so that no quality target can be met by
# retuning it (`WORLD`): each video is 96 frames at 8 fps (12 s) with n = 32 candidates, one per
# 3-frame block; 3-5 events, one shape at a time, each lasting 1-3 candidate spacings (3, 6 or
# 9 frames), at least one spacing apart. One (colour, shape) kind occurs 1, 2 or 3 times (the
# count question's, uniform; the video then has at least count + 2 events), every other kind
# once. Three questions per video:
#
# - presence: "When does the red circle appear?" — a shown kind; truth: its occurrences (a
#   single frame can tell);
# - order: "What appears right after the blue square?" — an anchor shown once and not last;
#   truth: the anchor's span and the next event's span (no single frame can tell which event is
#   next); four options, the answer names the next event;
# - count: "How many times does the green bar appear?" — the repeated kind; truth: every
#   occurrence; options 1, 2, 3.
#
# Truth is time spans in seconds, [start, end) per occurrence, the form grounding datasets use
# (`fsmodel.metrics.candidates_in_spans` maps them onto candidates).


@dataclass(frozen=True)
class World:
    """The world's fixed distribution (see the comment above `WORLD`)."""

    num_candidates: int = 32
    num_frames: int = 96
    fps: float = 8.0
    size: tuple[int, int] = (64, 48)
    events: tuple[int, int] = (3, 5)
    spacings: tuple[int, int] = (1, 3)
    counts: tuple[int, ...] = (1, 2, 3)
    kinds: tuple[str, ...] = ("presence", "order", "count")

    @property
    def spacing(self) -> int:
        """Frames between two candidates."""
        return self.num_frames // self.num_candidates


WORLD = World()
QUESTION_KINDS = WORLD.kinds


def object_name(color: str, shape: str) -> str:
    """How the world names a kind: ``"the red circle"``."""
    return f"the {color} {shape}"


def frame_caption(events: list[Event] | tuple[Event, ...], index: int) -> str:
    """What frame ``index`` shows, in the words the world's captions use: ``"a red circle"``
    (``"a red circle and a blue bar"`` when several), or the empty background."""
    shown = [f"a {e.color} {e.shape}" for e in events if e.start <= index <= e.end]
    return " and ".join(shown) if shown else "an empty textured background"


@dataclass(frozen=True)
class WorldQuestion:
    """One question about a world video, with the spans that answer it.

    Attributes:
        kind: ``presence``, ``order`` or ``count``.
        question: the text.
        options: the choices (empty for presence).
        answer: the right option ("" for presence).
        spans: ``((start_s, end_s), ...)``, half-open, in seconds.
        subject: the (colour, shape) the question names.
    """

    kind: str
    question: str
    options: tuple[str, ...]
    answer: str
    spans: tuple[tuple[float, float], ...]
    subject: tuple[str, str]


@dataclass(frozen=True)
class WorldVideo:
    """One video of the world: its events (in time order) and its questions."""

    video_id: str
    events: tuple[Event, ...]
    questions: tuple[WorldQuestion, ...]
    world: World = WORLD

    def write(self, path: str | Path, seed: int = 0) -> SyntheticVideo:
        """Encode it (h264, the world's size and frame rate)."""
        return write_video(
            path,
            num_frames=self.world.num_frames,
            size=self.world.size,
            fps=self.world.fps,
            events=self.events,
            seed=seed,
        )

    def frames(self, indices: Any, seed: int = 0) -> list[np.ndarray]:
        """Frames ``indices`` as `write` draws them with ``seed`` (RGB uint8), without encoding."""
        width, height = self.world.size
        background = _background(width, height, seed)
        return [render_frame(int(i), width, height, self.events, background) for i in indices]

    def span(self, event: Event) -> tuple[float, float]:
        return (event.start / self.world.fps, (event.end + 1) / self.world.fps)

    def presence_question(self, kind: tuple[str, str]) -> WorldQuestion:
        """The presence question about ``kind`` = (colour, shape) ("When does the red circle
        appear?"); its truth: every occurrence."""
        color, shape = kind
        spans = tuple(self.span(e) for e in self.events if (e.color, e.shape) == kind)
        return WorldQuestion("presence", Event(0, 0, shape, color).question, (), "", spans, kind)

    @property
    def shown(self) -> list[tuple[str, str]]:
        """The (colour, shape) kinds the video shows, in order of first appearance."""
        return list(dict.fromkeys((e.color, e.shape) for e in self.events))

    def every_presence(self) -> tuple[WorldQuestion, ...]:
        """A presence question for every kind the video shows, in order of first appearance:
        rows whose frames are the same and whose truth differs, so only the question tells them
        apart."""
        return tuple(self.presence_question(kind) for kind in self.shown)


def world_video(rng: np.random.Generator, video_id: str, world: World = WORLD) -> WorldVideo:
    """Draw one video of ``world`` and its three questions (deterministic for a seeded rng)."""
    kinds = [(c, s) for c in COLORS for s in SHAPES]
    for _ in range(100):  # a draw with no possible order anchor is redrawn (rare)
        count = int(rng.choice(world.counts))
        n = int(rng.integers(max(world.events[0], count + 2), world.events[1] + 1))
        picked = rng.permutation(len(kinds))[: n - count + 1]
        repeated, others = kinds[picked[0]], [kinds[i] for i in picked[1:]]
        order = [repeated] * count + others
        order = [order[i] for i in rng.permutation(len(order))]
        anchors = [i for i in range(n - 1) if order.count(order[i]) == 1]
        if anchors:
            break
    else:  # pragma: no cover - 100 failed draws cannot happen with the world's counts
        raise RuntimeError("could not draw a world video")
    lengths = [world.spacing * int(rng.integers(world.spacings[0], world.spacings[1] + 1))
               for _ in range(n)]  # fmt: skip
    free = world.num_frames - sum(lengths) - world.spacing * (n - 1)
    cuts = np.sort(rng.integers(0, free + 1, size=n))
    extra = np.diff(np.concatenate([[0], cuts]))
    events, start = [], 0
    for i, ((color, shape), length) in enumerate(zip(order, lengths, strict=True)):
        start += int(extra[i]) + (world.spacing if i else 0)
        events.append(Event(start, start + length - 1, shape, color))
        start += length
    video = WorldVideo(video_id, tuple(events), ())
    return WorldVideo(video_id, tuple(events), _questions(video, rng, anchors, repeated))


def _questions(
    video: WorldVideo, rng: np.random.Generator, anchors: list[int], repeated: tuple[str, str]
) -> tuple[WorldQuestion, ...]:
    events, shown = video.events, video.shown
    presence = video.presence_question(shown[int(rng.integers(len(shown)))])
    a = anchors[int(rng.integers(len(anchors)))]
    anchor, after = events[a], events[a + 1]
    answer = object_name(after.color, after.shape)
    distractors = [object_name(*k) for k in shown if k not in ((anchor.color, anchor.shape),
                                                             (after.color, after.shape))]  # fmt: skip
    pool = [object_name(c, s) for c in COLORS for s in SHAPES]
    distractors += [p for p in pool if p not in distractors and p != answer
                    and p != object_name(anchor.color, anchor.shape)]  # fmt: skip
    options = [answer, *distractors[:3]]
    options = tuple(options[i] for i in rng.permutation(4))
    order = WorldQuestion(
        "order", f"What appears right after {object_name(anchor.color, anchor.shape)}?", options,
        answer, (video.span(anchor), video.span(after)), (anchor.color, anchor.shape),
    )  # fmt: skip
    occurrences = video.presence_question(repeated).spans
    count = WorldQuestion(
        "count", f"How many times does {object_name(*repeated)} appear?",
        tuple(str(c) for c in WORLD.counts), str(len(occurrences)), occurrences, repeated,
    )  # fmt: skip
    return (presence, order, count)


def world_videos(count: int, seed: int = 0, prefix: str = "w") -> list[WorldVideo]:
    """``count`` videos of the world, drawn from one seeded generator."""
    rng = np.random.default_rng(seed)
    return [world_video(rng, f"{prefix}{i:04d}") for i in range(count)]
