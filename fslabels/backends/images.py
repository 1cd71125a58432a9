"""Images in chat requests: numpy RGB frames or PIL images, checked once, encoded for transport."""

from __future__ import annotations

import base64
import io
from typing import Any

__all__ = ["to_data_url", "to_pil"]

_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}


def to_pil(image: Any) -> Any:
    """An RGB ``PIL.Image`` from an RGB uint8 array ``[H, W, 3]`` or a PIL image.

    Raises:
        ValueError: for arrays of another shape or dtype, or anything else.
    """
    import numpy as np
    from PIL import Image

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"an image array must be RGB [H, W, 3], got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8, got {image.dtype}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"an image array must not be empty, got shape {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image))
    raise ValueError(
        f"an image must be a numpy RGB uint8 array or a PIL image, not {type(image).__name__}"
    )


def to_data_url(image: Any, image_format: str = "png", quality: int = 90) -> str:
    """A ``data:image/...;base64,...`` URL, the way OpenAI-compatible servers take images.

    Args:
        image: see `to_pil`.
        image_format: ``"png"`` (lossless, the default), ``"jpeg"`` or ``"webp"``.
        quality: JPEG/WebP quality.
    """
    key = image_format.lower()
    if key not in _FORMATS:
        raise ValueError(f"image_format must be one of {sorted(_FORMATS)}, got {image_format!r}")
    buffer = io.BytesIO()
    pil = to_pil(image)
    if _FORMATS[key] == "PNG":
        pil.save(buffer, format="PNG")
    else:
        pil.save(buffer, format=_FORMATS[key], quality=quality)
    mime = "jpeg" if _FORMATS[key] == "JPEG" else key
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
