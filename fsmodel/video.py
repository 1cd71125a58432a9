"""The one candidate-frame sampler: labelling, training and inference all see the same frames.

For a video of N decodable frames and n candidates, candidate i is frame
``min(N - 1, floor((i + 0.5) * N / n))`` (segment midpoints; frames repeat when N < n).
"Frame i" means the i-th frame a player shows: frames hidden by an mp4 edit list do not count,
and timestamps are the stream's presentation times, not ``i / fps``.

How exactness is kept: a probe demuxes the stream once (no decoding) to list every shown frame's
presentation timestamp and every keyframe; a reader then decodes only the groups of pictures
that hold a target and recognises targets by timestamp. Frames are resized as they are decoded,
so memory does not grow with the video's length.

Example:
    >>> from fsmodel.video import sample_candidates
    >>> cands = sample_candidates("clip.mp4", num_candidates=16, size=224)
    >>> cands.frames.shape, cands.indices[:3], cands.timestamps[:3]
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from itertools import pairwise
from typing import ClassVar

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_NUM_CANDIDATES = 128
DEFAULT_SIZE = 224
MODES = ("exact", "keyframe")


class ReaderUnsupported(Exception):
    """Raised by a reader for a file it cannot decode correctly; the sampler falls back to PyAV."""


class VideoError(ValueError):
    """A video that cannot be sampled; names the file and the cause."""

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


@dataclass
class VideoIndex:
    """What a probe learns without decoding: the shown frames' timestamps and the keyframes.

    Attributes:
        path: the file.
        pts: presentation timestamps of the shown frames in display order (stream time base);
            ``None`` when the container has no timestamps (then frames are counted instead).
        keyframe_pts: presentation timestamps of the keyframes, ascending.
        gop: for each shown frame, the ordinal (in decode order) of the keyframe its decoding
            starts from; -1 for frames before the first keyframe.
        keyframe_seek: for each keyframe ordinal, a timestamp at or before it (``min(pts, dts)``),
            used to step back a group of pictures when a seek landed too late.
        time_base: seconds per timestamp tick.
        start: the first shown frame's timestamp (time 0 of the reported timestamps).
        num_frames: shown frames (N).
        fps: average frame rate.
        duration: seconds from the first frame's start to the last frame's end.
        width, height: coded size; ``rotation``: clockwise degrees to turn it for display.
        codec: decoder name; ``edit_list``: whether the container hides frames it stores;
        ``open_gop``: whether some frames are shown before the keyframe they are decoded after
            (they depend on the previous group of pictures).
    """

    path: str
    pts: np.ndarray | None
    keyframe_pts: np.ndarray
    gop: np.ndarray | None
    keyframe_seek: np.ndarray
    time_base: float
    start: int
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    rotation: int
    codec: str
    edit_list: bool
    open_gop: bool = False

    def timestamps(self, indices: np.ndarray) -> np.ndarray:
        """Presentation times in seconds (from the first shown frame) of frames ``indices``."""
        if self.pts is None:
            return np.asarray(indices, np.float64) / self.fps
        return (self.pts[indices] - self.start).astype(np.float64) * self.time_base


@dataclass
class Candidates:
    """Candidate frames of one video.

    Attributes:
        frames: RGB uint8 ``[n, H, W, 3]``, upright (the stream's rotation applied).
        indices: ``[n]`` frame index in the video of each candidate.
        timestamps: ``[n]`` presentation time in seconds of each candidate.
        num_frames: shown frames in the video (N).
        fps: average frame rate.
        duration: seconds.
        video: the file sampled.
        reader: the reader that decoded the frames.
        mode: ``"exact"`` or ``"keyframe"``.
        target_indices: the frames the candidate rule asked for; differs from ``indices`` only in
            keyframe mode, where ``indices - target_indices`` is how far each pick moved.
    """

    frames: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    num_frames: int
    fps: float
    duration: float
    video: str
    reader: str
    mode: str = "exact"
    target_indices: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.target_indices is None:
            self.target_indices = self.indices.copy()

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def offsets(self) -> np.ndarray:
        """Frames each candidate moved from its target (all zero in exact mode)."""
        return self.indices - self.target_indices


def candidate_indices(num_frames: int, num_candidates: int = DEFAULT_NUM_CANDIDATES) -> np.ndarray:
    """The candidate rule: segment midpoints, ``min(N-1, floor((i + 0.5) * N / n))``.

    Integer arithmetic (``(2i + 1) N // 2n``) so no float rounding can move a pick.

    Raises:
        ValueError: if either count is not positive.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if num_candidates <= 0:
        raise ValueError(f"num_candidates must be positive, got {num_candidates}")
    i = np.arange(num_candidates, dtype=np.int64)
    return np.minimum(num_frames - 1, ((2 * i + 1) * num_frames) // (2 * num_candidates))


def output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """``(width, height)`` with the short side scaled to ``size`` (``None`` keeps the original)."""
    if size is None:
        return width, height
    if size <= 0:
        raise ValueError(f"size must be a positive short-side length or None, got {size}")
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _open(path: str):
    import av

    try:
        return av.open(path, metadata_errors="ignore")
    except FileNotFoundError as err:
        raise VideoError(path, "no such file") from err
    except IsADirectoryError as err:
        raise VideoError(path, "is a directory, not a video file") from err
    except PermissionError as err:
        raise VideoError(path, "permission denied") from err
    except av.FFmpegError as err:
        raise VideoError(path, f"not a readable video ({_ffmpeg_reason(err)})") from err


def _ffmpeg_reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _video_stream(container, path: str):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise VideoError(path, f"has no video stream (found: {', '.join(kinds)})")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.name is None:
        raise VideoError(path, "video stream has no decoder available")
    return stream


def probe(video: str | os.PathLike) -> VideoIndex:
    """Demux (without decoding) the first video stream and index its shown frames.

    Raises:
        VideoError: missing file, not a video, no video stream, no frames, or unreadable data.
    """
    import av

    path = os.fspath(video)
    if not os.path.exists(path):
        raise VideoError(path, "no such file")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise VideoError(path, "is empty (0 bytes)")
    with _open(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        width, height, codec = ctx.width, ctx.height, ctx.name
        time_base = float(stream.time_base) if stream.time_base else 0.0
        shown: list[tuple[int, int]] = []  # (pts, decode position)
        keys: list[int] = []  # decode positions of keyframes
        key_seek: list[int] = []  # a seek timestamp for each keyframe
        stored = 0  # packets seen, in decode order
        edit_list = False
        missing_pts = False
        try:
            for pos, packet in enumerate(container.demux(stream)):
                if packet.size == 0:  # the flush packet at the end
                    continue
                stored += 1
                if packet.is_keyframe:
                    keys.append(stored - 1)
                    cand = [t for t in (packet.pts, packet.dts) if t is not None]
                    key_seek.append(min(cand) if cand else 0)
                if packet.is_discard:
                    edit_list = True
                    continue
                if packet.pts is None:
                    missing_pts = True
                shown.append((packet.pts if packet.pts is not None else pos, stored - 1))
        except av.FFmpegError as err:
            if not shown:
                raise VideoError(path, f"unreadable data ({_ffmpeg_reason(err)})") from err
            raise VideoError(
                path, f"corrupt or truncated after {len(shown)} frames ({_ffmpeg_reason(err)})"
            ) from err
        if not shown:
            raise VideoError(path, "has no video frames")
        rotation = _first_frame_rotation(container, stream, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        declared = _declared_duration(container, stream)

    num_frames = len(shown)
    if missing_pts or time_base == 0:
        fps = float(rate) if rate else 25.0
        return VideoIndex(
            path=path,
            pts=None,
            keyframe_pts=np.zeros(0, np.int64),
            gop=None,
            keyframe_seek=np.zeros(0, np.int64),
            time_base=1.0 / fps,
            start=0,
            num_frames=num_frames,
            fps=fps,
            duration=num_frames / fps,
            width=width,
            height=height,
            rotation=rotation,
            codec=codec,
            edit_list=edit_list,
        )

    shown.sort()
    pts = np.fromiter((p for p, _ in shown), np.int64, num_frames)
    decode_pos = np.fromiter((d for _, d in shown), np.int64, num_frames)
    keys_arr = np.asarray(keys, np.int64)
    # The keyframe a frame depends on is the last one at or before it in decode order.
    which_key = np.searchsorted(keys_arr, decode_pos, side="right") - 1
    key_shown = np.isin(decode_pos, keys_arr)
    key_pts = np.full(len(keys_arr), np.iinfo(np.int64).min)
    shown_keys = np.searchsorted(keys_arr, decode_pos[key_shown])
    key_pts[shown_keys] = pts[key_shown]
    open_gop = bool(np.any((which_key >= 0) & (pts < key_pts[np.maximum(which_key, 0)])))
    span = float(pts[-1] - pts[0]) * time_base
    # Average rate from the timestamps themselves (right for VFR); the header's rate otherwise.
    fps = (num_frames - 1) / span if span > 0 else (float(rate) if rate else 25.0)
    duration = span + 1.0 / fps
    if declared is not None and duration < declared - max(0.5, 0.1 * declared):
        raise VideoError(
            path,
            f"truncated: the header says {declared:.2f} s but frames end at {duration:.2f} s "
            f"({num_frames} frames readable)",
        )
    return VideoIndex(
        path=path,
        pts=pts,
        keyframe_pts=pts[key_shown],
        gop=which_key,
        keyframe_seek=np.asarray(key_seek, np.int64),
        time_base=time_base,
        start=int(pts[0]),
        num_frames=num_frames,
        fps=fps,
        duration=duration,
        width=width,
        height=height,
        rotation=rotation,
        codec=codec,
        edit_list=edit_list,
        open_gop=open_gop,
    )


def _declared_duration(container, stream) -> float | None:
    """The video's length as its header states it, to detect files cut short."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    # A container-level duration covers every stream; trust it only when video is alone.
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / 1_000_000
    return None


def _first_frame_rotation(container, stream, path: str) -> int:
    """Clockwise display rotation, read from the first decoded frame's display matrix."""
    import av

    try:
        container.seek(stream.start_time or 0, stream=stream)
        for frame in container.decode(stream):
            # PyAV reports the counter-clockwise angle; players turn the picture the other way.
            return round(-(frame.rotation or 0)) % 360
    except av.FFmpegError as err:
        raise VideoError(path, f"cannot decode the first frame ({_ffmpeg_reason(err)})") from err
    raise VideoError(path, "no frame could be decoded")


def _upright(img: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return img
    # np.rot90 turns counter-clockwise; k=-1 is a clockwise quarter turn.
    return np.ascontiguousarray(np.rot90(img, k=-(rotation // 90)))


def _in_threads(fn, parts: list) -> None:
    """``fn(part)`` for each part, in parallel threads when there is more than one part.

    Each part opens its own container; PyAV releases the GIL while it decodes."""
    if len(parts) <= 1:
        for part in parts:
            fn(part)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(parts), thread_name_prefix="framesel-decode") as pool:
        list(pool.map(fn, parts))


class _FrameConverter:
    """Decoded frame → upright RGB uint8 at the output size. One per thread: it keeps its own
    swscale context, which is ~7× faster than ``frame.reformat()`` building one per frame."""

    def __init__(self, width: int, height: int, rotation: int) -> None:
        from av.video.reformatter import VideoReformatter

        self.width, self.height, self.rotation = width, height, rotation
        self._reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        rgb = self._reformatter.reformat(
            frame, width=self.width, height=self.height, format="rgb24", interpolation="AREA"
        )
        return _upright(rgb.to_ndarray(), self.rotation)


# --- readers ------------------------------------------------------------------------------------

READERS: dict[str, type[FrameReader]] = {}


def register_reader(cls: type[FrameReader]) -> type[FrameReader]:
    """Class decorator: make a reader available to `sample_candidates` by its ``name``."""
    READERS[cls.name] = cls
    return cls


def get_reader(name: str, threads: int | None = None) -> FrameReader:
    """The reader registered as ``name``; an unknown name lists the known ones."""
    try:
        cls = READERS[name]
    except KeyError:
        raise ValueError(f"unknown reader {name!r}; known readers: {sorted(READERS)}") from None
    return cls(threads=threads)


class FrameReader(ABC):
    """Decodes given frames of a probed video, resized as they are decoded.

    Subclasses set ``name`` and implement `read`; heavy imports happen inside `read`.
    """

    name: ClassVar[str]

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads or min(2, os.cpu_count() or 1)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "name", None):
            raise TypeError(f"{cls.__name__} must set a class attribute `name`")

    @abstractmethod
    def read(self, index: VideoIndex, targets: np.ndarray, size: int | None) -> np.ndarray:
        """Frames ``targets`` (sorted, unique display indices) as RGB uint8 ``[t, H, W, 3]``,
        upright and resized so the short side is ``size``."""

    def read_keyframes(
        self, index: VideoIndex, targets: np.ndarray, size: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keyframe mode: the distinct keyframes nearest the targets ``[k, H, W, 3]``, their
        display indices ``[k]``, and for each target the position of its keyframe ``[t]``."""
        raise NotImplementedError(f"reader {self.name!r} has no keyframe mode; use 'pyav'")


@register_reader
class PyAVReader(FrameReader):
    """FFmpeg through PyAV: seeks to the keyframe before each group of targets and decodes
    forward only as far as the group's last target. Honours edit lists, VFR and rotation."""

    name = "pyav"

    def read(self, index: VideoIndex, targets: np.ndarray, size: int | None) -> np.ndarray:
        if index.pts is None:
            return self._read_counting(index, targets, size)
        frames = np.empty((len(targets), *self._shape(index, size)), np.uint8)
        got = np.zeros(len(targets), bool)
        # Groups of pictures are independent: split them over threads, each with its own
        # demuxer and a single-threaded decoder (PyAV releases the GIL while decoding). On two
        # cores this beats FFmpeg's own frame threading, which restarts at every seek.
        gop = index.gop[targets]
        starts = np.flatnonzero(np.r_[True, gop[1:] != gop[:-1]])
        chunks = [c for c in np.array_split(starts, self.threads) if len(c)]
        edges = [int(c[0]) for c in chunks] + [len(targets)]
        bounds = list(pairwise(edges))

        def run(lo_hi: tuple[int, int], step_back: int = 0) -> None:
            subset = np.zeros(len(targets), bool)
            subset[lo_hi[0] : lo_hi[1]] = True
            with _open(index.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "SLICE"
                self._decode_groups(
                    container, stream, index, targets, size, frames, got, subset, step_back
                )

        _in_threads(run, bounds)
        # Open GOPs (frames shown before a keyframe that reference the previous group) or a
        # demuxer that lands late: step back one group of pictures per retry.
        for step_back in (1, 2):
            if got.all():
                break
            run((0, len(targets)), step_back)
        if not got.all():
            missing = targets[~got]
            raise VideoError(
                index.path,
                f"corrupt or truncated: {len(missing)} of {len(targets)} requested frames could not "
                f"be decoded (first: frame {int(missing[0])})",
            )
        return frames

    def _decode_groups(
        self, container, stream, index, targets, size, frames, got, subset, step_back
    ) -> None:
        """One forward pass per group of pictures over the targets of ``subset`` still missing."""
        import av

        want = index.pts[targets]
        gop = index.gop[targets]
        todo = np.flatnonzero(subset & ~got)
        slot_of = {int(want[k]): int(k) for k in todo}
        converter = _FrameConverter(*output_size(index.width, index.height, size), index.rotation)
        k = 0
        while k < len(todo):
            # All targets decoded from the same keyframe share one forward pass.
            end = k
            while end + 1 < len(todo) and gop[todo[end + 1]] == gop[todo[k]]:
                end += 1
            if step_back == 0 or gop[todo[k]] < 0:
                # Seeking to the first target's own time lands on the keyframe it needs whether
                # the demuxer indexes by pts (Matroska) or by shifted dts (mp4); seeking to the
                # keyframe's dts can land one whole group early.
                seek_to = int(want[todo[k]])
            else:
                seek_to = int(index.keyframe_seek[max(0, gop[todo[k]] - step_back)])
            last_pts = int(want[todo[end]])
            try:
                container.seek(seek_to, stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    slot = slot_of.pop(frame.pts, None)
                    if slot is not None:
                        frames[slot] = converter(frame)
                        got[slot] = True
                    if frame.pts >= last_pts:
                        break
            except av.FFmpegError as err:
                raise VideoError(
                    index.path,
                    f"corrupt or truncated: decoding near frame {int(targets[todo[k]])} failed "
                    f"({_ffmpeg_reason(err)})",
                ) from err
            k = end + 1

    def read_keyframes(
        self, index: VideoIndex, targets: np.ndarray, size: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import av

        if index.pts is None or len(index.keyframe_pts) == 0:
            raise VideoError(index.path, "keyframe mode needs timestamps and keyframes in the file")
        # Nearest keyframe in time to each target.
        want = index.pts[targets]
        kpts = index.keyframe_pts
        right = np.clip(np.searchsorted(kpts, want), 0, len(kpts) - 1)
        left = np.clip(right - 1, 0, len(kpts) - 1)
        snapped = np.where(
            np.abs(kpts[left] - want) <= np.abs(kpts[right] - want), kpts[left], kpts[right]
        )
        unique_pts, which = np.unique(snapped, return_inverse=True)
        out_size = output_size(index.width, index.height, size)
        decoded: dict[int, np.ndarray] = {}

        def run(chunk: np.ndarray) -> None:
            convert = _FrameConverter(*out_size, index.rotation)
            with _open(index.path) as container:
                stream = container.streams.video[0]
                # No frame threading (it delays output by a frame per thread) and no skip_frame
                # (the reorder delay would then wait for the next keyframes): the keyframe comes
                # out after a couple of packets.
                stream.thread_type = "NONE"
                for kp in chunk:
                    try:
                        container.seek(int(kp), stream=stream, backward=True, any_frame=False)
                        for frame in container.decode(stream):
                            if frame.pts is not None and frame.pts >= kp:
                                if frame.pts == kp:
                                    decoded[int(kp)] = convert(frame)
                                break
                    except av.FFmpegError as err:
                        raise VideoError(
                            index.path,
                            f"corrupt or truncated near pts {kp} ({_ffmpeg_reason(err)})",
                        ) from err

        _in_threads(run, [c for c in np.array_split(unique_pts, self.threads) if len(c)])
        if len(decoded) != len(unique_pts):
            raise VideoError(
                index.path, "some keyframes could not be decoded (corrupt or truncated)"
            )
        frames = np.stack([decoded[int(p)] for p in unique_pts])
        return frames, np.searchsorted(index.pts, unique_pts), which

    def _read_counting(
        self, index: VideoIndex, targets: np.ndarray, size: int | None
    ) -> np.ndarray:
        """For streams without timestamps: decode in order and count."""
        import av

        convert = _FrameConverter(*output_size(index.width, index.height, size), index.rotation)
        wanted = {int(t): k for k, t in enumerate(targets)}
        frames = np.empty((len(targets), *self._shape(index, size)), np.uint8)
        found = 0
        with _open(index.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                for i, frame in enumerate(container.decode(stream)):
                    if i in wanted:
                        frames[wanted[i]] = convert(frame)
                        found += 1
                        if found == len(targets):
                            break
            except av.FFmpegError as err:
                raise VideoError(
                    index.path, f"corrupt or truncated ({_ffmpeg_reason(err)})"
                ) from err
        if found != len(targets):
            raise VideoError(
                index.path, f"corrupt or truncated: decoded {found} of {len(targets)} frames"
            )
        return frames

    @staticmethod
    def _shape(index: VideoIndex, size: int | None) -> tuple[int, int, int]:
        # Scaled in the stored orientation; the turn for display comes after.
        w, h = output_size(index.width, index.height, size)
        return (w, h, 3) if index.rotation in (90, 270) else (h, w, 3)


@register_reader
class DecordReader(FrameReader):
    """decord's ``get_batch``. Guarded against its known pitfalls: files with edit lists or open
    GOPs (it returns wrong frames), AV1 (it cannot decode it) and rotated streams go to PyAV, and
    the reader is closed right after the batch (an open reader keeps decoding in the background
    and its memory grows without bound)."""

    name = "decord"

    def read(self, index: VideoIndex, targets: np.ndarray, size: int | None) -> np.ndarray:
        from fsmodel._imports import require

        reason = self._unsupported(index)
        if reason:
            raise ReaderUnsupported(reason)
        decord = require("decord", extra="decord", purpose="the decord video reader")
        w, h = output_size(index.width, index.height, size)
        try:
            vr = decord.VideoReader(index.path, ctx=decord.cpu(0), width=w, height=h, num_threads=0)
        except decord.DECORDError as err:
            raise VideoError(index.path, f"decord cannot open it ({_decord_reason(err)})") from err
        try:
            if len(vr) != index.num_frames:
                raise ReaderUnsupported(
                    f"counts {len(vr)} frames where the stream shows {index.num_frames}"
                )
            batch = vr.get_batch(targets.tolist()).asnumpy()
            vr.seek(0)  # stops decord's background decoding before the reader is dropped
        except decord.DECORDError as err:
            raise VideoError(index.path, f"corrupt or truncated ({_decord_reason(err)})") from err
        finally:
            del vr
        return np.ascontiguousarray(batch[..., :3])

    @staticmethod
    def _unsupported(index: VideoIndex) -> str | None:
        if index.edit_list:
            return "ignores mp4 edit lists (it would return the wrong frames)"
        if index.open_gop:
            return "returns wrong frames around open-GOP keyframes"
        if index.codec in ("av1", "libdav1d", "libaom-av1"):
            return "cannot decode AV1"
        if index.rotation:
            return "does not apply the display rotation"
        if index.pts is None:
            return "needs a container with timestamps"
        return None


def _decord_reason(err: Exception) -> str:
    # decord prefixes each nested message with "[time] /build/path/file.cc:line: ".
    import re

    return re.sub(r"\[[\d:]+\] \S+:\d+: ", "", str(err)).strip()[:300]


DEFAULT_READER = "pyav"


def sample_candidates(
    video: str | os.PathLike,
    num_candidates: int = DEFAULT_NUM_CANDIDATES,
    size: int | None = DEFAULT_SIZE,
    reader: str = DEFAULT_READER,
    mode: str = "exact",
    threads: int | None = None,
) -> Candidates:
    """Decode the ``num_candidates`` candidate frames of a video.

    Args:
        video: path to a video file.
        num_candidates: n, the number of candidates (segment midpoints of the video).
        size: short side of the returned frames in pixels (``None``: the stored size).
        reader: a registered reader (``"pyav"``, the measured-faster default, or ``"decord"``).
        mode: ``"exact"`` (frame i is frame i) or ``"keyframe"`` (each candidate snaps to the
            nearest keyframe: several times faster on long videos; ``Candidates.offsets`` says
            how far each pick moved).
        threads: decoding threads for this video (default: up to 2). When many videos are
            decoded in parallel, pass 1.

    Returns:
        `Candidates` with frames ``[n, H, W, 3]`` uint8 RGB, indices, timestamps and metadata.

    Raises:
        VideoError: the file is missing, not a video, has no video frames, or is corrupt.
        ValueError: bad arguments (unknown reader or mode, non-positive counts or size).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if num_candidates <= 0:
        raise ValueError(f"num_candidates must be positive, got {num_candidates}")
    output_size(2, 2, size)  # validates size
    frame_reader = get_reader(reader, threads=threads)
    path = os.fspath(video)
    index = probe(path)
    targets = candidate_indices(index.num_frames, num_candidates)
    unique, inverse = np.unique(targets, return_inverse=True)
    used_reader = frame_reader.name
    if mode == "exact":
        try:
            decoded = frame_reader.read(index, unique, size)
        except ReaderUnsupported as why:
            logger.warning("%s: reader %r %s; decoding with PyAV instead", path, reader, why)
            used_reader = PyAVReader.name
            decoded = PyAVReader(threads=frame_reader.threads).read(index, unique, size)
        indices = targets
        # Gather (a copy) only when short videos repeat frames.
        frames = decoded if len(unique) == len(targets) else decoded[inverse]
    else:
        keyframes, key_indices, which = frame_reader.read_keyframes(index, unique, size)
        pick = which[inverse]
        frames, indices = keyframes[pick], key_indices[pick]
    return Candidates(
        frames=frames,
        indices=indices.astype(np.int64),
        timestamps=index.timestamps(indices),
        num_frames=index.num_frames,
        fps=index.fps,
        duration=index.duration,
        video=path,
        reader=used_reader,
        mode=mode,
        target_indices=targets.astype(np.int64),
    )


__all__ = [
    "DEFAULT_NUM_CANDIDATES",
    "DEFAULT_READER",
    "DEFAULT_SIZE",
    "READERS",
    "Candidates",
    "FrameReader",
    "VideoError",
    "VideoIndex",
    "candidate_indices",
    "get_reader",
    "output_size",
    "probe",
    "register_reader",
    "sample_candidates",
]
