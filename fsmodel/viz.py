"""Pictures people would rather look at than read: contact sheets of candidate frames.

Pillow only (no plotting library), so the CLI can draw one anywhere framesel installs.

Example:
    >>> from fsmodel.video import sample_candidates
    >>> from fsmodel.viz import contact_sheet
    >>> contact_sheet(sample_candidates("clip.mp4", 32)).save("sheet.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from fsmodel.video import Candidates

_HIGHLIGHT = (255, 170, 0)


def _label_font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def contact_sheet(
    candidates: Candidates,
    columns: int = 16,
    thumb_height: int = 72,
    scores: Sequence[float] | np.ndarray | None = None,
    highlight: Sequence[int] | None = None,
    title: str | None = None,
) -> Image.Image:
    """A grid of the candidate frames, each captioned with its position, frame index and time.

    Args:
        candidates: what `fsmodel.video.sample_candidates` returned.
        columns: thumbnails per row.
        thumb_height: thumbnail height in pixels (width follows the aspect ratio).
        scores: optional per-candidate scores in [0, 1], drawn as a bar under each thumbnail.
        highlight: candidate positions to frame in orange (e.g. selected frames).
        title: a line of text above the grid (defaults to the file name and counts).

    Returns:
        A PIL RGB image.

    Raises:
        ValueError: if ``scores`` does not have one value per candidate.
    """
    from PIL import Image, ImageDraw

    n = len(candidates)
    if scores is not None and len(scores) != n:
        raise ValueError(f"scores has {len(scores)} values for {n} candidates")
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    h0, w0 = candidates.frames.shape[1:3]
    tw, th = max(1, round(w0 * thumb_height / h0)), thumb_height
    label_h = 14 + (6 if scores is not None else 0)
    pad, head = 4, 26
    sheet = Image.new(
        "RGB",
        (pad + columns * (tw + pad), head + rows * (th + label_h + pad) + pad),
        (24, 24, 28),
    )
    draw = ImageDraw.Draw(sheet)
    font, small = _label_font(13), _label_font(10)
    if title is None:
        title = (
            f"{candidates.video}  ·  {n} candidates of {candidates.num_frames} frames  ·  "
            f"{candidates.duration:.1f} s  ·  {candidates.reader}/{candidates.mode}"
        )
    draw.text((pad, 6), title, fill=(235, 235, 235), font=font)
    marked = set(highlight or ())
    for k in range(n):
        r, c = divmod(k, columns)
        x, y = pad + c * (tw + pad), head + r * (th + label_h + pad)
        img = Image.fromarray(candidates.frames[k]).resize((tw, th), Image.Resampling.BILINEAR)
        sheet.paste(img, (x, y))
        if k in marked:
            draw.rectangle((x - 2, y - 2, x + tw + 1, y + th + 1), outline=_HIGHLIGHT, width=2)
        text = f"#{k} f{int(candidates.indices[k])} {candidates.timestamps[k]:.1f}s"
        draw.text((x, y + th + 1), text, fill=(200, 200, 200), font=small)
        if scores is not None:
            s = float(np.clip(scores[k], 0.0, 1.0))
            by = y + th + 15
            draw.rectangle((x, by, x + tw - 1, by + 3), fill=(60, 60, 66))
            draw.rectangle((x, by, x + round((tw - 1) * s), by + 3), fill=_HIGHLIGHT)
    return sheet
