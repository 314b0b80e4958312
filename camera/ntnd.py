"""An Area Detector frame as PV Access delivers it (NTNDArray, from NDPluginPva).

Everything the Channel Access path reads from separate readbacks travels with the frame here:
the shape in ``dimension`` (dims[0] is x, fastest first, as ArraySize0..2), the colour mode in
the ``ColorMode`` attribute, the data type in the array's own type, the frame counter in
``uniqueId``. A compressed frame (``codec.name`` not empty: NDPluginCodec upstream) carries its
original type in ``codec.parameters`` (pvData's ScalarType number) and is decompressed here
where the codec's library is installed; otherwise refused with a ``bad_codec`` error.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .frames import COLOR_MODES, DATA_TYPES, CodecError, FrameError, Geometry, geometry_from_dims

# pvData ScalarType numbers of the numeric types (what codec.parameters holds).
SCALAR_TYPES = {1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16", 7: "UInt32",
                8: "UInt64", 9: "Float32", 10: "Float64"}
TYPE_NAMES = {np.dtype(numpy_type): name for name, numpy_type in DATA_TYPES.items()}


@dataclass(frozen=True)
class NtndFrame:
    data: np.ndarray  # flat, in the detector's own type
    geometry: Geometry
    counter: int
    timestamp: float | None


def ntnd_frame(value: Any) -> NtndFrame:
    """Decode one NTNDArray (a p4p Value, or anything indexable by its field names)."""
    dims = [int(d["size"]) for d in value["dimension"]]
    if not 2 <= len(dims) <= 3:
        raise FrameError(f"the NTNDArray has {len(dims)} dimensions; an image has 2 or 3")
    attributes = {a["name"]: a["value"] for a in value["attribute"]}
    data = np.asarray(value["value"])
    codec = value["codec.name"] or ""
    if codec:
        data_type = _original_type(value["codec.parameters"], codec)
        data = decompress(codec, data, data_type, int(value["uncompressedSize"]))
    else:
        data_type = TYPE_NAMES.get(data.dtype)
        if data_type is None:
            raise FrameError(f"an NTNDArray of {data.dtype} is not an image type; "
                             f"supported: {', '.join(DATA_TYPES)}")
    mode = _color_mode(attributes.get("ColorMode"), dims)
    geometry = geometry_from_dims(tuple((dims + [1, 1])[:3]), len(dims), mode, data_type)  # type: ignore[arg-type]
    return NtndFrame(data.ravel(), geometry, int(value["uniqueId"]), _timestamp(value))


def _original_type(parameter: Any, codec: str) -> str:
    try:
        return SCALAR_TYPES[int(parameter)]
    except (TypeError, ValueError, KeyError):
        raise FrameError(f"a {codec!r}-compressed frame does not say its data type "
                         f"(codec.parameters = {parameter!r})") from None


def _color_mode(attribute: Any, dims: list[int]) -> str:
    """From the ColorMode attribute; without one, from where a dimension of 3 sits."""
    if attribute is not None:
        index = int(attribute)
        if not 0 <= index < len(COLOR_MODES):
            raise FrameError(f"ColorMode attribute {index} is not an Area Detector colour mode")
        return COLOR_MODES[index]
    if len(dims) == 3:
        for position, mode in enumerate(("RGB1", "RGB2", "RGB3")):
            if dims[position] == 3:
                return mode
    return "Mono"


def _timestamp(value: Any) -> float | None:
    for field in ("dataTimeStamp", "timeStamp"):
        seconds = int(value[f"{field}.secondsPastEpoch"])
        if seconds:
            return seconds + int(value[f"{field}.nanoseconds"]) * 1e-9
    return None


# --- codecs --------------------------------------------------------------------------------

def _lz4(raw: bytes, size: int) -> bytes:
    return importlib.import_module("lz4.block").decompress(raw, uncompressed_size=size)


def _jpeg(raw: bytes, size: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:
        return image.tobytes()


def _blosc(raw: bytes, size: int) -> bytes:
    return importlib.import_module("blosc").decompress(raw)


# name → (decompressor of bytes into ``size`` bytes, the package that provides it)
CODECS: dict[str, tuple[Callable[[bytes, int], bytes], str]] = {
    "lz4": (_lz4, "lz4"), "jpeg": (_jpeg, "pillow"), "blosc": (_blosc, "blosc"),
}


def decompress(codec: str, data: np.ndarray, data_type: str, size: int) -> np.ndarray:
    """The frame's values from its compressed bytes; CodecError if the codec is unknown or
    its library is not installed."""
    known = CODECS.get(codec)
    if known is None:
        raise CodecError(f"frames compressed with {codec!r} cannot be decoded here; "
                         f"decodable: {', '.join(sorted(CODECS))} (or switch the codec off upstream)")
    function, package = known
    try:
        raw = function(np.ascontiguousarray(data).view(np.uint8).tobytes(), size)
    except ImportError:
        raise CodecError(f"frames compressed with {codec!r} need the {package!r} package, which is not "
                         "installed on this server") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt frame is told, not raised further
        raise FrameError(f"a {codec!r}-compressed frame could not be decompressed: {exc}") from None
    dtype = np.dtype(DATA_TYPES[data_type])
    if len(raw) != size or size % dtype.itemsize:
        raise FrameError(f"a {codec!r} frame decompressed to {len(raw)} bytes; {size} expected")
    return np.frombuffer(raw, dtype=dtype)
