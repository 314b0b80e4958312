"""Image transforms, the camera transform and background collection, on small arrays checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from camera.processing import CameraConfig, RegionOfInterest, camera_transform, collect_background
from camera.processing.transforms import (
    apply_threshold,
    bin_image,
    mirror,
    region_of_interest,
    rotate,
    subtract_background,
    to_mono,
    working_dtype,
)

IMAGE = np.arange(12, dtype=np.uint16).reshape(3, 4)  # 3 rows (y) x 4 columns (x)


def test_background_subtraction_clamps_unsigned_at_zero():
    image = np.array([[100, 200, 65535]], dtype=np.uint16)
    background = np.array([[150, 50, 0]], dtype=np.uint16)
    result = subtract_background(image, background)
    assert result.dtype == np.float32
    assert result.tolist() == [[0.0, 150.0, 65535.0]]
    assert image.tolist() == [[100, 200, 65535]]  # the input is left alone


def test_background_subtraction_keeps_32_bit_precision():
    image = np.array([[4_000_000_001]], dtype=np.uint32)
    assert subtract_background(image, np.array([[1.0]])).tolist() == [[4_000_000_000.0]]


def test_background_shape_must_match():
    with pytest.raises(ValueError, match="^background"):
        subtract_background(IMAGE, np.zeros((4, 3)))


def test_threshold_is_a_copy():
    result = apply_threshold(IMAGE, 5)
    assert result.tolist() == [[0, 0, 0, 0], [0, 5, 6, 7], [8, 9, 10, 11]]
    assert IMAGE[0, 1] == 1


def test_region_of_interest_order_is_x_offset_width_y_offset_height():
    crop = region_of_interest(IMAGE, RegionOfInterest(x_offset=1, width=2, y_offset=1, height=2))
    assert crop.tolist() == [[5, 6], [9, 10]]
    with pytest.raises(ValueError, match="^image_region_of_interest"):
        region_of_interest(IMAGE, RegionOfInterest(x_offset=3, width=2, y_offset=0, height=1))


def test_binning_sums_by_default_and_drops_partial_blocks():
    summed = bin_image(IMAGE, 2, 2)
    assert summed.tolist() == [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7]]
    assert summed.dtype == np.int64
    assert bin_image(IMAGE, 2, 1, mean=True).tolist() == [[0.5, 2.5], [4.5, 6.5], [8.5, 10.5]]
    assert bin_image(IMAGE, 1, 1) is IMAGE
    full = np.full((4, 4), 65535, dtype=np.uint16)
    assert bin_image(full, 4, 4).tolist() == [[16 * 65535]]  # no uint16 overflow


def test_binning_errors():
    with pytest.raises(ValueError, match="^binning"):
        bin_image(IMAGE, 0, 1)
    with pytest.raises(ValueError, match="^binning"):
        bin_image(IMAGE, 5, 1)


def test_mirror_and_rotate():
    assert mirror(IMAGE, mirror_x=True).tolist() == [[3, 2, 1, 0], [7, 6, 5, 4], [11, 10, 9, 8]]
    assert mirror(IMAGE, mirror_y=True).tolist() == [[8, 9, 10, 11], [4, 5, 6, 7], [0, 1, 2, 3]]
    assert mirror(IMAGE) is IMAGE
    # One quarter turn counter-clockwise: the top-right pixel goes to the top-left.
    assert rotate(IMAGE, 1).tolist() == [[3, 7, 11], [2, 6, 10], [1, 5, 9], [0, 4, 8]]
    assert rotate(IMAGE, 2).tolist() == IMAGE[::-1, ::-1].tolist()
    assert rotate(IMAGE, -1).tolist() == rotate(IMAGE, 3).tolist()
    assert rotate(IMAGE, 4).tolist() == IMAGE.tolist()


def test_camera_transform_order_is_binning_mirror_rotate():
    image = np.arange(24, dtype=np.uint8).reshape(4, 6)
    camera = CameraConfig(binning_x=2, binning_y=2, mirror_x=True, rotate=1)
    expected = np.rot90(bin_image(image, 2, 2)[:, ::-1], 1)
    assert camera_transform(image, camera).tolist() == expected.tolist()
    assert camera_transform(image, CameraConfig()).tolist() == image.tolist()


def test_rgb_to_mono_sums_channels_without_overflow():
    rgb = np.full((2, 3, 3), 200, dtype=np.uint8)
    mono = to_mono(rgb)
    assert mono.shape == (2, 3) and mono.tolist() == [[600] * 3] * 2
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 255, np.uint8)], axis=2)
    assert to_mono(rgba).tolist() == mono.tolist()
    assert to_mono(IMAGE) is IMAGE


@pytest.mark.parametrize("image", [np.zeros(3), np.zeros((2, 2, 2)), np.zeros((2, 2), dtype=bool),
                                   np.array([["a"]]), np.zeros((2, 2, 3, 1))])
def test_to_mono_refuses_what_it_cannot_process(image):
    with pytest.raises(ValueError, match="^image"):
        to_mono(image)


def test_working_dtype():
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.float16, np.float32):
        assert working_dtype(np.dtype(dtype)) is np.float32
    for dtype in (np.uint32, np.int32, np.int64, np.uint64, np.float64):
        assert working_dtype(np.dtype(dtype)) is np.float64


def test_collect_background_averages_frames():
    frames = [np.full((2, 3), value, dtype=np.uint16) for value in (10, 20, 31)]
    background = collect_background(iter(frames))
    assert background.dtype == np.float32 and background.shape == (2, 3)
    assert background.tolist() == [[pytest.approx(61 / 3)] * 3] * 2


def test_collect_background_of_rgb_frames_is_mono():
    assert collect_background([np.ones((2, 2, 3), dtype=np.uint8)]).tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_collect_background_errors():
    with pytest.raises(ValueError, match="^frames: no frame"):
        collect_background([])
    with pytest.raises(ValueError, match="^frames: frame 1"):
        collect_background([np.zeros((2, 2)), np.zeros((2, 3))])
