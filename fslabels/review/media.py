"""What the reviewer's browser is shown: a playable clip, the candidate frames, a contact sheet.

- `browser_clip`: the video as Chromium plays it. H.264 / VP8 / VP9 in yuv420p inside mp4 or
  webm is copied as is; anything else (an OpenCV ``mp4v`` file, HEVC, 10-bit, …) is re-encoded
  to VP9 WebM with every frame at its own presentation time, so frame numbers on the review
  timeline are the video's frame numbers.
- `candidate_images`: the candidate frames decoded by `fsmodel.video.sample_candidates`, the one
  sampler that labelling used, so the reviewer sees exactly the labelled frames (their indices
  are checked against the row's).
- `contact_sheet`: all candidates in one grid image, each tagged with its position, frame number
  and fused score, for an overview next to the one-at-a-time gallery.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fsmodel.video import probe, sample_candidates

__all__ = ["BROWSER_CODECS", "browser_clip", "candidate_images", "contact_sheet", "encode_jpeg"]

# (container format names as PyAV reports them, codec) pairs that Chromium plays.
BROWSER_CODECS = {"h264", "vp8", "vp9"}
_BROWSER_CONTAINERS = ("mp4", "webm", "matroska")
_CLIP_SHORT_SIDE = 480
_JPEG_QUALITY = 90


def _playable(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return False
        stream = container.streams.video[0]
        fmt = container.format.name or ""
        return (
            stream.codec_context.name in BROWSER_CODECS
            and (stream.codec_context.pix_fmt or "") == "yuv420p"
            and any(name in fmt for name in _BROWSER_CONTAINERS)
            and path.suffix.lower() in (".mp4", ".webm", ".m4v")
        )


def browser_clip(
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    short_side: int = _CLIP_SHORT_SIDE,
) -> Path:
    """A copy of ``video`` that Chromium plays, in ``out_dir`` (``clip.mp4`` / ``clip.webm``).

    Args:
        video: the source file.
        out_dir: where the clip goes.
        short_side: re-encoded clips are scaled down to this short side (never up).

    Returns:
        The clip's path.

    Raises:
        fsmodel.video.VideoError: the source cannot be read.
    """
    import av

    source = Path(video)
    index = probe(source)  # a clear VideoError for missing or broken files
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if _playable(source):
        target = out / f"clip{source.suffix.lower()}"
        shutil.copyfile(source, target)
        return target
    target = out / "clip.webm"
    scale = min(1.0, short_side / max(1, min(index.width, index.height)))
    width = max(2, round(index.width * scale / 2) * 2)
    height = max(2, round(index.height * scale / 2) * 2)
    partial = out / "clip.webm.partial"
    with av.open(str(source)) as inp, av.open(str(partial), "w", format="webm") as outp:
        ist = inp.streams.video[0]
        ist.thread_type = "AUTO"
        ost = outp.add_stream("libvpx-vp9", rate=ist.average_rate or 30)
        ost.width, ost.height, ost.pix_fmt = width, height, "yuv420p"
        ost.codec_context.time_base = ist.time_base
        ost.codec_context.options = {
            "crf": "32",
            "b": "0",
            "deadline": "realtime",
            "cpu-used": "8",
            "row-mt": "1",
        }
        first = None
        for frame in inp.decode(ist):
            if frame.pts is None:
                continue
            if first is None:
                first = frame.pts
            converted = frame.reformat(width=width, height=height, format="yuv420p")
            converted.pts = frame.pts - first  # time 0 is the first shown frame, as in labels
            converted.time_base = ist.time_base
            outp.mux(ost.encode(converted))
        outp.mux(ost.encode(None))
    partial.replace(target)
    return target


def candidate_images(
    video: str | os.PathLike[str],
    frame_indices: Sequence[int],
    short_side: int | None = 360,
) -> tuple[np.ndarray, object]:
    """Decode the row's candidate frames with the labelling sampler and check they are the same.

    Args:
        video: the video file.
        frame_indices: the row's ``frame_indices`` (n of them).
        short_side: the images' short side (never upscaled; None: stored size).

    Returns:
        ``(frames [n, H, W, 3] uint8, candidates)`` where ``candidates`` is the
        `fsmodel.video.Candidates` (timestamps, fps, num_frames, …).

    Raises:
        ValueError: the video's candidates are not the row's (the file changed since labelling).
    """

    n = len(frame_indices)
    index = probe(video)
    size = (
        None if short_side is None or short_side >= min(index.width, index.height) else short_side
    )
    candidates = sample_candidates(video, num_candidates=n, size=size)
    got = np.asarray(candidates.indices, dtype=np.int64)
    want = np.asarray(frame_indices, dtype=np.int64)
    if not np.array_equal(got, want):
        first = int(np.flatnonzero(got != want)[0])
        raise ValueError(
            f"{video}: its {n} candidate frames are not the labelled ones (candidate {first} is "
            f"frame {got[first]} now, frame {want[first]} in the dataset); the file changed "
            "since labelling"
        )
    return candidates.frames, candidates


def encode_jpeg(frame: np.ndarray, quality: int = _JPEG_QUALITY) -> bytes:
    """One RGB uint8 frame as JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def contact_sheet(
    frames: np.ndarray,
    frame_indices: Sequence[int],
    scores: Sequence[float],
    columns: int = 8,
    thumb_width: int = 160,
) -> bytes:
    """All candidate frames in a grid (JPEG), each captioned ``#position · frame · score``; a
    bar under each thumbnail shows its fused score.

    Args:
        frames: ``[n, H, W, 3]`` uint8.
        frame_indices: the video frame number of each candidate.
        scores: the fused score of each candidate.
        columns: thumbnails per row.
        thumb_width: thumbnail width in pixels.
    """
    from PIL import Image, ImageDraw

    n, h, w = frames.shape[:3]
    thumb_height = max(1, round(h * thumb_width / w))
    caption, bar, pad = 14, 4, 4
    cell_w, cell_h = thumb_width + pad, thumb_height + caption + bar + pad
    rows = -(-n // columns)
    sheet = Image.new("RGB", (columns * cell_w + pad, rows * cell_h + pad), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        x = pad + (i % columns) * cell_w
        y = pad + (i // columns) * cell_h
        thumb = Image.fromarray(frames[i]).resize((thumb_width, thumb_height))
        sheet.paste(thumb, (x, y))
        score = float(scores[i])
        draw.rectangle(
            [x, y + thumb_height, x + thumb_width - 1, y + thumb_height + bar - 1],
            fill=(220, 220, 220),
        )
        draw.rectangle(
            [x, y + thumb_height, x + round(score * (thumb_width - 1)), y + thumb_height + bar - 1],
            fill=(46, 125, 50),
        )
        draw.text(
            (x, y + thumb_height + bar),
            f"#{i} f{int(frame_indices[i])} {score:.2f}",
            fill=(20, 20, 20),
        )
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()
