"""From CA arrays to images and JPEGs: shapes per colour mode, unsigned types, bad arrays,
normalisation of awkward values, downscaling."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from camera.encode import Output, encode_jpeg, to_8bit
from camera.frames import FrameError, Geometry, geometry_from_dims, reinterpret, to_image


def test_unsigned_types_are_reinterpreted_bit_for_bit():
    wire = np.array([-1, -32768, 32767, 0], dtype=np.int16)  # how CA delivers UInt16 65535, 32768, ...
    assert reinterpret(wire, "UInt16").tolist() == [65535, 32768, 32767, 0]
    assert reinterpret(np.array([-1, 5], dtype=np.int32), "UInt32").tolist() == [4294967295, 5]
    assert reinterpret(np.array([255, 1], dtype=np.uint8), "Int8").tolist() == [-1, 1]  # DBR_CHAR is unsigned
    assert reinterpret(np.array([-1, 2], dtype=np.int32), "UInt16").tolist() == [65535, 2]  # other widths: modulo
    assert reinterpret(np.array([1.5], dtype=np.float64), "Float32").dtype == np.float32


@pytest.mark.parametrize(("mode", "dims", "ndims"), [
    ("Mono", (4, 3, 0), 2), ("RGB1", (3, 4, 3), 3), ("RGB2", (4, 3, 3), 3), ("RGB3", (4, 3, 3), 3)])
def test_every_colour_mode_gives_height_width_channels(mode, dims, ndims):
    geometry = geometry_from_dims(dims, ndims, mode, "UInt8")
    assert (geometry.width, geometry.height) == (4, 3)
    red, green, blue = (np.full((3, 4), v, dtype=np.uint8) for v in (10, 20, 30))
    if mode == "Mono":
        flat = red.ravel()
    elif mode == "RGB1":
        flat = np.stack([red, green, blue], axis=-1).ravel()  # pixel-interleaved
    elif mode == "RGB2":
        flat = np.stack([red, green, blue], axis=1).ravel()  # row-interleaved
    else:
        flat = np.stack([red, green, blue]).ravel()  # planes
    image = to_image(flat, geometry)
    if mode == "Mono":
        assert image.shape == (3, 4) and image[0, 0] == 10
    else:
        assert image.shape == (3, 4, 3) and image[2, 3].tolist() == [10, 20, 30]


def test_bad_arrays_and_shapes_are_errors_with_reasons():
    geometry = Geometry(8, 8, "Mono", "UInt16")
    with pytest.raises(FrameError, match="holds 10 values .* needs 64"):
        to_image(np.zeros(10, dtype=np.int16), geometry)
    assert to_image(np.zeros(100, dtype=np.int16), geometry).shape == (8, 8)  # longer (NELM) arrays: the first 64
    with pytest.raises(FrameError, match="Bayer"):
        geometry_from_dims((8, 8, 0), 2, "Bayer", "UInt16")
    with pytest.raises(FrameError, match="data type"):
        geometry_from_dims((8, 8, 0), 2, "Mono", "Complex")
    with pytest.raises(FrameError, match="nothing to show"):
        geometry_from_dims((0, 8, 0), 2, "Mono", "UInt8")


def test_normalisation_of_nan_inf_negative_flat_and_empty_images():
    data = np.array([[np.nan, 0.0], [np.inf, 100.0]], dtype=np.float32)
    linear = to_8bit(data, log=False)
    assert linear.tolist() == [[0, 0], [0, 255]]
    assert to_8bit(np.array([[-50, 50]], dtype=np.int16), log=False).tolist() == [[0, 255]]
    assert to_8bit(np.full((2, 2), 7, dtype=np.uint16), log=True).max() == 0  # flat: black, no division by 0
    assert to_8bit(np.zeros((0, 0)), log=False).shape == (0, 0)
    log = to_8bit(np.array([[0, 10, 1000, 100000]], dtype=np.uint32), log=True)[0]
    assert log[0] == 0 and log[-1] == 255 and log[1] < log[2] < log[3]
    assert log[2] > 255 * 1000 / 100000  # faint parts lifted: the point of the log mode


def test_large_frames_are_downscaled_before_encoding():
    image = (np.arange(2048 * 1536, dtype=np.uint32).reshape(1536, 2048) % 4096).astype(np.uint16)
    jpeg, size = encode_jpeg(image, Output(log=False, max_size=512, quality=80))
    assert size == (512, 384)
    picture = Image.open(io.BytesIO(jpeg))
    assert picture.size == (512, 384) and picture.format == "JPEG"
    _, odd = encode_jpeg(np.zeros((1000, 700), dtype=np.uint8), Output(max_size=300))
    assert max(odd) == 300 and odd[1] == 300


def test_normalising_never_changes_the_shared_frame():
    frame = np.array([[1.0, 5.0], [np.nan, 9.0]], dtype=np.float32)  # float32: no conversion copy
    kept = frame.copy()
    to_8bit(frame, log=True)
    to_8bit(frame, log=False)
    np.testing.assert_array_equal(frame, kept)
