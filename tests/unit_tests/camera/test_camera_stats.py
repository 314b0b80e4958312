"""Profile statistics, the Gaussian fit and slices, on 1-D and small 2-D data with known answers.

Tolerances: 1e-6 where the answer is exact arithmetic, 0.01 samples on a noise-free sampled
Gaussian (sigma >= 5 samples), 0.05 samples on its FWHM (linear interpolation at the crossings).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from camera.processing import gauss, gauss_fit
from camera.processing.slices import linear_fit, slice_count, slice_image
from camera.processing.stats import FWHM_PER_SIGMA, center_of_mass_rms, fwhm, good_region, profiles

COORDS = np.arange(200, dtype=np.float64)


def test_profiles_are_column_and_row_sums():
    x_profile, y_profile = profiles(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert x_profile.tolist() == [5.0, 7.0, 9.0] and y_profile.tolist() == [6.0, 15.0]
    assert x_profile.dtype == np.float64


def test_center_of_mass_and_rms():
    assert center_of_mass_rms(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.0, 1.0])) == (1.0, 1.0)
    assert center_of_mass_rms(np.array([0.0, 1.0]), np.array([0.0, 0.0])) == (None, None)
    assert center_of_mass_rms(np.array([0.0, 1.0, 2.0]), np.array([-1.0, 3.0, -1.0])) == (1.0, None)


def test_fwhm_of_a_gaussian_and_of_a_triangle():
    assert fwhm(gauss(COORDS, 3.0, 50.0, 90.4, 7.5)) == pytest.approx(FWHM_PER_SIGMA * 7.5, abs=0.05)
    assert fwhm(np.array([0.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0, 0.0])) == pytest.approx(4.0)


@pytest.mark.parametrize("profile", [np.zeros(5), np.ones(5), np.array([5.0, 4.0, 3.0]), np.array([1.0, 2.0]),
                                     np.array([0.0, 1.0, 2.0, 3.0])])
def test_fwhm_is_none_without_a_whole_peak(profile):
    assert fwhm(profile) is None


def test_good_region_follows_cam_server():
    profile = np.array([0, 0, 1, 5, 10, 5, 1, 0, 0, 0], dtype=np.float64)
    # Level 0.3 * 10 = 3: samples 3..5 (3 wide); gfscale 1.8 adds 3 * 0.8 / 2 = 1.2 each side.
    assert good_region(profile, 0.3, 1.8) == (1, 8)
    assert good_region(profile, 0.3, 1.0) == (3, 6)
    assert good_region(profile, 0.3, 100.0) == (0, 10)
    assert good_region(profile, 0.0, 1.0) == (0, 10)
    assert good_region(profile, 1.0, 1.0) == (4, 5)
    assert good_region(profile, 0.3, 0.01) == (4, 5)
    assert good_region(np.ones(4), 0.3, 1.8) == (0, 4)
    assert good_region(np.zeros(0), 0.3, 1.8) == (0, 0)


def test_noise_free_fit_is_exact():
    fit = gauss_fit(COORDS, gauss(COORDS, 12.0, 300.0, 97.3, 9.1))
    assert fit.method == "gauss"
    assert fit.mean == pytest.approx(97.3, abs=0.01) and fit.standard_deviation == pytest.approx(9.1, abs=0.01)
    assert fit.amplitude == pytest.approx(300.0, rel=1e-3) and fit.offset == pytest.approx(12.0, abs=0.3)
    assert np.allclose(fit.function(COORDS), gauss(COORDS, 12.0, 300.0, 97.3, 9.1))


def test_fit_of_huge_values_is_well_conditioned():
    fit = gauss_fit(COORDS, gauss(COORDS, 1e11, 5e12, 40.2, 5.0))
    assert fit.method == "gauss" and fit.mean == pytest.approx(40.2, abs=0.01)


def test_fit_with_calibrated_coordinates():
    coords = 3.0 - 0.01 * COORDS  # descending, as cam_server's calibrated axes are
    fit = gauss_fit(coords, gauss(COORDS, 0.0, 1.0, 120.0, 10.0))
    assert fit.mean == pytest.approx(3.0 - 1.2, abs=1e-4) and fit.standard_deviation == pytest.approx(0.1, abs=1e-4)


def test_fit_of_a_noisy_profile():
    rng = np.random.default_rng(7)
    profile = rng.poisson(gauss(COORDS, 20.0, 400.0, 60.6, 6.0)).astype(np.float64)
    fit = gauss_fit(COORDS, profile)
    assert fit.method == "gauss"
    assert fit.mean == pytest.approx(60.6, abs=0.1) and fit.standard_deviation == pytest.approx(6.0, rel=0.02)
    assert fit.amplitude == pytest.approx(400.0, rel=0.03) and fit.offset == pytest.approx(20.0, abs=2.0)


def test_fit_of_a_beam_at_the_edge_stays_inside_the_profile():
    fit = gauss_fit(COORDS, gauss(COORDS, 0.0, 1.0, 215.0, 10.0))
    assert fit is not None and COORDS[0] <= fit.mean <= COORDS[-1]


def test_fit_falls_back_to_moments_on_short_profiles():
    fit = gauss_fit(np.arange(3.0), np.array([1.0, 3.0, 1.0]))
    assert fit.method == "moments" and fit.mean == 1.0 and fit.amplitude == 2.0 and fit.offset == 1.0


@pytest.mark.parametrize("profile", [np.zeros(10), np.full(10, 4.0), np.array([]), np.array([1.0, np.nan, 2.0])])
def test_no_fit_without_a_peak(profile):
    assert gauss_fit(np.arange(float(profile.size)), profile) is None


def test_fit_of_a_single_spike():
    profile = np.zeros(50)
    profile[20] = 7.0
    fit = gauss_fit(np.arange(50.0), profile)
    assert fit is not None and fit.mean == pytest.approx(20.0, abs=0.01) and math.isfinite(fit.standard_deviation)


def test_slice_count_is_odd():
    assert [slice_count(n) for n in (1, 2, 3, 4, 11)] == [1, 3, 3, 5, 11]


def test_slices_of_a_column_band_image():
    image = np.zeros((24, 9))
    image[:, 4] = 1.0  # a vertical line at x = 4: every horizontal band centres on it
    result = slice_image(image, np.arange(9.0), np.arange(24.0), 11.5, 4.0, number_of_slices=3, scale=6.0,
                         orientation="vertical")
    assert result.amount == 3 and result.width == 8  # 6 sigma / 3 slices
    assert [s.center_y for s in result.slices] == [3.5, 11.5, 19.5]
    assert [s.center_x for s in result.slices] == [4.0, 4.0, 4.0]
    assert [s.standard_deviation for s in result.slices] == [0.0, 0.0, 0.0]
    assert [s.intensity for s in result.slices] == [8.0, 8.0, 8.0]


def test_slices_outside_the_image_are_omitted():
    image = np.ones((10, 10))
    assert slice_image(image, np.arange(10.0), np.arange(10.0), 50.0, 2.0, number_of_slices=3, scale=2.0,
                       orientation="horizontal").slices == []
    result = slice_image(image, np.arange(10.0), np.arange(10.0), 1.5, 2.0, number_of_slices=5, scale=10.0,
                         orientation="horizontal")
    assert len(result.slices) == 1 and result.slices[0].center_x == 1.5


def test_empty_band_has_no_statistics():
    image = np.zeros((10, 10))
    image[4:6, :] = 1.0
    result = slice_image(image, np.arange(10.0), np.arange(10.0), 4.5, 1.0, number_of_slices=3, scale=6.0,
                         orientation="vertical")
    assert result.slices[0] is None and result.slices[1] is not None and result.slices[2] is None


def test_linear_fit():
    assert linear_fit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx((2.0, 1.0))
    assert linear_fit([1.0], [1.0]) is None
    assert linear_fit([1.0, 1.0], [0.0, 2.0]) is None
