"""NTNDArray frames (Area Detector over PV Access) decoded: shape, colour mode, type, counter,
codecs. Built with p4p's own NTNDArray type, as NDPluginPva's frames arrive."""

import io

import lz4.block
import numpy as np
import pytest
from p4p.nt import NTNDArray
from PIL import Image

from camera.frames import to_image
from camera.ntnd import CodecError, FrameError, ntnd_frame


def frame(data: np.ndarray, *, color: int | None = None, codec: str = "", original: int | None = None,
          uncompressed: int = 0, dims: list[int] | None = None, unique: int = 7):
    value = NTNDArray().wrap(np.zeros(1, np.uint8))
    value["value"] = (_union(data), data.ravel())
    value["dimension"] = [{"size": s} for s in (dims or list(reversed(data.shape)))]
    value["attribute"] = [] if color is None else [{"name": "ColorMode", "value": color}]
    value["uniqueId"] = unique
    value["dataTimeStamp.secondsPastEpoch"] = 1_700_000_000
    value["dataTimeStamp.nanoseconds"] = 500_000_000
    if codec:
        value["codec.name"] = codec
        value["codec.parameters"] = original
        value["uncompressedSize"] = uncompressed
    return value


def _union(data: np.ndarray) -> str:
    return {"u1": "ubyteValue", "i1": "byteValue", "u2": "ushortValue", "i2": "shortValue", "u4": "uintValue",
            "i4": "intValue", "u8": "ulongValue", "i8": "longValue", "f4": "floatValue",
            "f8": "doubleValue"}[data.dtype.str[1:]]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64,
                                   np.int64, np.float32, np.float64])
def test_every_numeric_type_keeps_its_values_and_shape(dtype):
    image = (np.arange(12).reshape(3, 4) * 3).astype(dtype)
    decoded = ntnd_frame(frame(image, color=0, unique=42))
    assert (decoded.geometry.width, decoded.geometry.height, decoded.geometry.color_mode) == (4, 3, "Mono")
    name = np.dtype(dtype).name  # uint16 -> UInt16, float32 -> Float32 (Area Detector's names)
    assert decoded.geometry.data_type == name.capitalize().replace("Uint", "UInt")
    assert np.array_equal(to_image(decoded.data, decoded.geometry), image)
    assert decoded.counter == 42 and decoded.timestamp == pytest.approx(1_700_000_000.5)


def test_dims_zero_is_x_and_colour_comes_from_the_attribute_or_the_dimension_of_three():
    rgb = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)  # height 2, width 5, RGB1 (pixel-interleaved)
    for color in (2, None):  # ColorMode=RGB1, or inferred from dims [3, 5, 2]
        decoded = ntnd_frame(frame(rgb, color=color))
        assert (decoded.geometry.width, decoded.geometry.height, decoded.geometry.color_mode) == (5, 2, "RGB1")
        assert np.array_equal(to_image(decoded.data, decoded.geometry), rgb)
    with pytest.raises(FrameError, match="colour mode 'Bayer' is not supported"):
        ntnd_frame(frame(rgb, color=1))
    with pytest.raises(FrameError, match="ColorMode attribute 99"):
        ntnd_frame(frame(rgb, color=99))
    with pytest.raises(FrameError, match="4 dimensions"):
        ntnd_frame(frame(np.zeros(16, np.uint8), dims=[2, 2, 2, 2]))


def test_lz4_and_jpeg_frames_are_decompressed():
    image = (np.arange(64 * 48) % 4000).astype(np.uint16).reshape(48, 64)
    packed = np.frombuffer(lz4.block.compress(image.tobytes(), store_size=False), np.uint8)
    decoded = ntnd_frame(frame(packed, color=0, codec="lz4", original=6, uncompressed=image.nbytes, dims=[64, 48]))
    assert decoded.geometry.data_type == "UInt16" and np.array_equal(to_image(decoded.data, decoded.geometry), image)
    gray = (np.arange(32 * 16) % 256).astype(np.uint8).reshape(16, 32)
    out = io.BytesIO()
    Image.fromarray(gray).save(out, format="JPEG", quality=100)
    jpeg = np.frombuffer(out.getvalue(), np.uint8)
    decoded = ntnd_frame(frame(jpeg, color=0, codec="jpeg", original=5, uncompressed=gray.nbytes, dims=[32, 16]))
    assert np.abs(to_image(decoded.data, decoded.geometry).astype(int) - gray).max() <= 3  # lossy at quality 100


def test_codecs_it_cannot_decode_are_refused_naming_the_codec():
    blob = np.zeros(10, np.uint8)
    with pytest.raises(CodecError, match="'blosc' need the 'blosc' package"):
        ntnd_frame(frame(blob, codec="blosc", original=6, uncompressed=20, dims=[5, 2]))
    with pytest.raises(CodecError, match="'bslz4' cannot be decoded here"):
        ntnd_frame(frame(blob, codec="bslz4", original=6, uncompressed=20, dims=[5, 2]))
    with pytest.raises(FrameError, match="does not say its data type"):
        ntnd_frame(frame(blob, codec="lz4", original=None, uncompressed=20, dims=[5, 2]))
    with pytest.raises(FrameError, match="could not be decompressed"):
        ntnd_frame(frame(blob, codec="lz4", original=6, uncompressed=20, dims=[5, 2]))
