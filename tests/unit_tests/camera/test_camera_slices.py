"""cam_server's slices on small images whose bands are worked out by hand from calculate_slices.

Each row (or column) of the test images is the same Gaussian, so every band's fit must find
that Gaussian's centre and sigma (0.01 samples, noise-free); band edges, centres on the cut
axis and lengths are exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from camera.processing import gauss
from camera.processing.slices import find_index, linear_fit, slice_count, slice_image

ROWS, COLS = 25, 21


def row_beam(rows: int = ROWS) -> np.ndarray:
    """Every row the same Gaussian across x: centre 10, sigma 2 (so each band's x-fit is known)."""
    return np.tile(gauss(np.arange(float(COLS)), 0.0, 1.0, 10.0, 2.0), (rows, 1))


def test_slice_count_is_odd():
    assert [slice_count(n) for n in (1, 2, 3, 4, 11)] == [1, 3, 3, 5, 11]


def test_find_index_on_ascending_and_descending_axes():
    up, down = np.arange(4.0), np.arange(3.0, -1.0, -1.0)
    assert [find_index(up, v) for v in (-1.0, 0.0, 1.5, 2.0, 10.0)] == [0, 0, 1, 2, 3]
    # Descending: the first sample at or below the value.
    assert [find_index(down, v) for v in (10.0, 2.0, 1.5, 0.0, -1.0)] == [0, 1, 2, 3, 3]


def test_bands_are_placed_as_cam_server_places_them():
    # Centre 12, sigma 4, 3 slices, scale 6: size 8, h = index(16) - index(12) = 4, middle band rows 8..15.
    # Pairs are added while the outer end stays below the last index: rows 0..7 and 16..23 (row 24 is unused).
    result = slice_image(row_beam(), np.arange(float(COLS)), np.arange(float(ROWS)), 12.0, 4.0,
                         number_of_slices=3, scale=6.0, orientation="vertical")
    assert result.amount == 3 and result.length == 8.0
    assert [s.center_y for s in result.slices] == [4.0, 12.0, 20.0]  # the axis value at each band's middle index
    assert [s.center_x for s in result.slices] == pytest.approx([10.0] * 3, abs=0.01)
    assert [s.standard_deviation for s in result.slices] == pytest.approx([2.0] * 3, abs=0.01)
    assert [s.intensity for s in result.slices] == pytest.approx([8 * row_beam()[0].sum()] * 3)


def test_a_band_ending_on_the_last_index_does_not_fit():
    result = slice_image(row_beam(24), np.arange(float(COLS)), np.arange(24.0), 12.0, 4.0,
                         number_of_slices=3, scale=6.0, orientation="vertical")
    assert [s.center_y for s in result.slices] == [12.0]  # rows 16..23 would end at index 24 = length


@pytest.mark.parametrize(("center", "half"), [(12.2, 3), (12.7, 4)])
def test_band_width_is_an_index_difference(center, half):
    # size 7: index(center + 3.5) - index(center) is 15 - 12 for 12.2 but 16 - 12 for 12.7.
    result = slice_image(row_beam(), np.arange(float(COLS)), np.arange(float(ROWS)), center, 3.5,
                         number_of_slices=1, scale=2.0, orientation="vertical")
    assert result.length == 2 * half and result.slices[0].center_y == 12.0


def test_bands_on_a_descending_calibrated_axis():
    y_axis = 10.0 - 0.5 * np.arange(float(ROWS))  # rows 0..24 -> 10 .. -2
    # Centre 4 (row 12), sigma 2: size 4 units; index(4) = 12, index(6) = 8 -> h = 4 rows, as in pixels.
    result = slice_image(row_beam(), np.arange(float(COLS)), y_axis, 4.0, 2.0, number_of_slices=3, scale=6.0,
                         orientation="vertical")
    assert result.length == 4.0
    assert [s.center_y for s in result.slices] == [8.0, 4.0, 0.0]


def test_horizontal_bands_are_columns():
    result = slice_image(row_beam().T, np.arange(float(ROWS)), np.arange(float(COLS)), 12.0, 4.0,
                         number_of_slices=3, scale=6.0, orientation="horizontal")
    assert [s.center_x for s in result.slices] == [4.0, 12.0, 20.0]
    assert [s.center_y for s in result.slices] == pytest.approx([10.0] * 3, abs=0.01)


def test_slices_outside_the_image_are_omitted():
    image = row_beam()
    axes = (np.arange(float(COLS)), np.arange(float(ROWS)))
    assert slice_image(image, *axes, 50.0, 2.0, number_of_slices=3, scale=2.0, orientation="vertical").slices == []
    edge = slice_image(image, *axes, 3.0, 2.0, number_of_slices=5, scale=10.0, orientation="vertical")
    assert edge.length == 4.0 and [s.center_y for s in edge.slices] == [3.0]  # h = 2; no room for a pair
    assert slice_image(image, *axes, 1.0, 2.0, number_of_slices=5, scale=10.0,
                       orientation="vertical").length is None  # the middle band would start at -1


def test_empty_band_has_no_statistics():
    image = np.zeros((ROWS, COLS))
    image[8:16] = row_beam()[8:16]
    result = slice_image(image, np.arange(float(COLS)), np.arange(float(ROWS)), 12.0, 4.0, number_of_slices=3,
                         scale=6.0, orientation="vertical")
    assert result.slices[0] is None and result.slices[1] is not None and result.slices[2] is None


def test_linear_fit():
    assert linear_fit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx((2.0, 1.0))
    assert linear_fit([1.0], [1.0]) is None
    assert linear_fit([1.0, 1.0], [0.0, 2.0]) is None
