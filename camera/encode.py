"""From an image to JPEG bytes: normalise to 8 bits (linear or log), downscale, encode.

Runs off the event loop (numpy and Pillow release the GIL), once per frame and output
setting however many viewers share that setting.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

DEFAULT_QUALITY = 85


@dataclass(frozen=True)
class Output:
    """One way of showing a camera; viewers with equal outputs share every encoded frame."""

    log: bool = True  # ophyd-websocket's default
    max_size: int = 2500  # longest side in pixels after downscaling
    quality: int = DEFAULT_QUALITY


def to_8bit(image: np.ndarray, log: bool) -> np.ndarray:
    """Scale to 0..255. Linear: 0 (or the minimum, if negative) to the maximum, so a dark
    field stays dark. Log: log(1+x), stretched from its minimum to its maximum, for the faint
    parts of a bright beam (ophyd-websocket's two modes). NaN and inf show as 0."""
    data = np.array(image, dtype=np.float32)  # a copy: the frame is shared (other outputs, processing)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, 0.0).astype(np.float32)
    lo = min(float(data.min()), 0.0) if data.size else 0.0
    if lo:
        data = data - lo
    if log:
        np.log1p(data, out=data)
        floor = float(data.min()) if data.size else 0.0
        if floor:
            data -= floor
    hi = float(data.max()) if data.size else 0.0
    if hi <= 0.0:
        return np.zeros(data.shape, dtype=np.uint8)
    data *= 255.0 / hi
    data += 0.5  # round, so the maximum is 255 despite float32 rounding
    np.minimum(data, 255.0, out=data)
    return data.astype(np.uint8)


def downscale(image: Image.Image, max_size: int) -> Image.Image:
    """At most ``max_size`` pixels on the longest side: first an integer box reduction (fast,
    averages), then an exact resize if still too large."""
    longest = max(image.size)
    if longest <= max_size:
        return image
    factor = longest // max_size
    if factor > 1:
        image = image.reduce(factor)
    if max(image.size) > max_size:
        scale = max_size / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    return image


def encode_jpeg(image: np.ndarray, output: Output) -> tuple[bytes, tuple[int, int]]:
    """JPEG bytes and the (width, height) sent."""
    pixels = to_8bit(image, output.log)
    picture = Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB")
    picture = downscale(picture, output.max_size)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=output.quality)
    return buffer.getvalue(), picture.size
