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


def score_sheets(
    candidates: Candidates,
    named_scores: Sequence[tuple[str, Sequence[float] | np.ndarray]],
    highlight: Sequence[int] | None = None,
    columns: int = 16,
) -> Image.Image:
    """Contact sheets of the same candidates stacked, one per score vector (e.g. spatial,
    temporal, fused), each titled with its name. NaN scores draw as empty bars.

    Args:
        candidates: the candidate frames.
        named_scores: ``(title, scores)`` pairs, one sheet each, top to bottom.
        highlight: candidate positions outlined on every sheet.
        columns: thumbnails per row.

    Returns:
        A PIL RGB image.
    """
    from PIL import Image

    sheets = [
        contact_sheet(
            candidates,
            columns=columns,
            scores=np.nan_to_num(np.asarray(values, np.float64), nan=0.0),
            highlight=highlight,
            title=title,
        )
        for title, values in named_scores
    ]
    picture = Image.new(
        "RGB", (max(s.width for s in sheets), sum(s.height for s in sheets)), (24, 24, 28)
    )
    y = 0
    for sheet in sheets:
        picture.paste(sheet, (0, y))
        y += sheet.height
    return picture


def selection_plot(
    timestamps: Sequence[float] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    chosen: Sequence[int] | np.ndarray,
    frames: np.ndarray,
    title: str = "",
    path: str | None = None,
):
    """The score curve over time with the chosen frames marked and shown as thumbnails.

    Args:
        timestamps: ``[n]`` candidate times in seconds.
        scores: ``[n]`` per-candidate scores in [0, 1].
        chosen: positions (0..n-1) of the chosen candidates.
        frames: ``[n, H, W, 3]`` candidate frames (only the chosen ones are drawn).
        title: the figure's title (e.g. the question).
        path: if given, the PNG is written there.

    Returns:
        The matplotlib figure.

    Raises:
        ImportError: without matplotlib (``pip install 'framesel[plot]'``).
        ValueError: if the lengths disagree.
    """
    from fsmodel._imports import require

    require("matplotlib", extra="plot", purpose="the selection plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = np.asarray(timestamps, np.float64)
    s = np.asarray(scores, np.float64)
    chosen = np.asarray(chosen, np.int64)
    if t.shape != s.shape or len(frames) != len(s):
        raise ValueError(
            f"timestamps {t.shape}, scores {s.shape} and frames {len(frames)} must agree"
        )
    k = max(1, len(chosen))
    fig = plt.figure(figsize=(max(8.0, 1.3 * k), 4.6), dpi=110)
    grid = fig.add_gridspec(2, k, height_ratios=[2.2, 1.2], hspace=0.35)
    ax = fig.add_subplot(grid[0, :])
    ax.plot(t, s, color="#4a6fa5", lw=1.4, label="score")
    ax.fill_between(t, s, color="#4a6fa5", alpha=0.15)
    ax.scatter(t[chosen], s[chosen], color="#ff9f1c", zorder=3, s=28, label=f"chosen (k={k})")
    for p in chosen:
        ax.axvline(t[p], color="#ff9f1c", lw=0.6, alpha=0.6)
    ax.set_xlim(t.min(), t.max() if t.max() > t.min() else t.min() + 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    for j, p in enumerate(chosen):
        thumb = fig.add_subplot(grid[1, j])
        thumb.imshow(frames[p])
        thumb.set_title(f"{t[p]:.1f}s", fontsize=8)
        thumb.axis("off")
    if path is not None:
        fig.savefig(path, bbox_inches="tight")
    return fig
