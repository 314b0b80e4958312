"""From an Area Detector array as Channel Access delivers it to an image.

The shape comes from what the detector publishes (the NDArray's dimensions: ArraySize0..2
and NDimensions of the array plugin), so binning, regions and plugins in between do not
break the picture. Channel Access has no unsigned types: a UInt16 detector's values arrive
as signed 16-bit numbers and are reinterpreted here, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Area Detector's NDColorMode and NDDataType enums, in their order.
COLOR_MODES = ("Mono", "Bayer", "RGB1", "RGB2", "RGB3", "YUV444", "YUV422", "YUV421")
SUPPORTED_MODES = ("Mono", "RGB1", "RGB2", "RGB3")
DATA_TYPES: dict[str, type[np.generic]] = {
    "Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16,
    "Int32": np.int32, "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64,
    "Float32": np.float32, "Float64": np.float64,
}


class FrameError(ValueError):
    """An array that cannot be shown as declared (told to the viewer, never raised further)."""


class CodecError(FrameError):
    """A compressed frame this server cannot decompress (told to viewers as ``bad_codec``)."""


@dataclass(frozen=True)
class Geometry:
    """What one frame is: its size in pixels, colour mode and data type."""

    width: int
    height: int
    color_mode: str
    data_type: str

    @property
    def values(self) -> int:
        return self.width * self.height * (1 if self.color_mode == "Mono" else 3)

    def settings_message(self) -> dict[str, object]:
        """ophyd-websocket's settings message."""
        return {"x": self.width, "y": self.height, "colorMode": self.color_mode, "dataType": self.data_type}


def geometry_from_dims(dims: tuple[int, int, int], ndims: int | None, color_mode: str,
                       data_type: str) -> Geometry:
    """The frame size from ArraySize0..2 (and NDimensions) as the array plugin reports them.

    Mono: (width, height); RGB1: (3, width, height); RGB2: (width, 3, height); RGB3:
    (width, height, 3) — NDArray dimensions, fastest first.
    """
    check_modes(color_mode, data_type)
    size0, size1, size2 = (int(d) for d in dims)
    if color_mode == "Mono" or ndims == 2:
        width, height = size0, size1
    elif color_mode == "RGB1":
        width, height = size1, size2
    elif color_mode == "RGB2":
        width, height = size0, size2
    else:  # RGB3
        width, height = size0, size1
    if width <= 0 or height <= 0:
        raise FrameError(f"the detector reports a {width}×{height} image; nothing to show")
    return Geometry(width, height, color_mode, data_type)


def check_modes(color_mode: str, data_type: str) -> None:
    if color_mode not in SUPPORTED_MODES:
        raise FrameError(f"colour mode {color_mode!r} is not supported; supported: {', '.join(SUPPORTED_MODES)}")
    if data_type not in DATA_TYPES:
        raise FrameError(f"data type {data_type!r} is not supported; supported: {', '.join(DATA_TYPES)}")


def reinterpret(raw: np.ndarray, data_type: str) -> np.ndarray:
    """The array in the detector's own type. Signed CA integers of the same width are viewed
    as the unsigned type (so 65535 is not -1); other widths are converted modulo 2**bits."""
    target = np.dtype(DATA_TYPES[data_type])
    raw = np.asarray(raw)
    if raw.dtype == target:
        return raw
    if target.kind == "u" and raw.dtype.kind in "iu":
        if raw.dtype.itemsize == target.itemsize:
            return raw.view(target)
        return (raw.astype(np.int64) & ((1 << (8 * target.itemsize)) - 1)).astype(target)
    return raw.astype(target)


def to_image(raw: np.ndarray, geometry: Geometry) -> np.ndarray:
    """An (height, width) or (height, width, 3) array of the detector's data type."""
    flat = reinterpret(np.ravel(raw), geometry.data_type)
    need = geometry.values
    if flat.size < need:
        raise FrameError(f"the array holds {flat.size} values but a {geometry.width}×{geometry.height} "
                         f"{geometry.color_mode} image needs {need}")
    flat = flat[:need]
    w, h = geometry.width, geometry.height
    mode = geometry.color_mode
    if mode == "Mono":
        return flat.reshape(h, w)
    if mode == "RGB1":
        return flat.reshape(h, w, 3)
    if mode == "RGB2":
        return flat.reshape(h, 3, w).transpose(0, 2, 1)
    return flat.reshape(3, h, w).transpose(1, 2, 0)  # RGB3
