"""Profile statistics and the Gaussian fit, checked against cam_server's definitions on small data.

Expected values are worked out by hand from the definitions in docs/camera-processing.md (the
arithmetic is in the comments). Tolerances: 1e-9 where the answer is exact arithmetic, 0.01
samples on a noise-free sampled Gaussian (sigma >= 5 samples).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from camera.processing import gauss, gauss_fit
from camera.processing.stats import (
    FWHM_PER_SIGMA,
    center_of_mass_rms,
    fwhm,
    gauss_center_of_mass_rms,
    good_region,
    interpolated_fwhm,
    profiles,
)

COORDS = np.arange(200, dtype=np.float64)
AXIS7 = np.arange(7.0)


def test_profiles_are_column_and_row_sums():
    x_profile, y_profile = profiles(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert x_profile.tolist() == [5.0, 7.0, 9.0] and y_profile.tolist() == [6.0, 15.0]
    assert x_profile.dtype == np.float64


def test_raw_center_of_mass_includes_everything():
    assert center_of_mass_rms(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.0, 1.0])) == (1.0, 1.0)
    assert center_of_mass_rms(np.array([0.0, 1.0]), np.array([0.0, 0.0])) == (None, None)
    assert center_of_mass_rms(np.array([0.0, 1.0, 2.0]), np.array([-1.0, 3.0, -1.0])) == (1.0, None)


def test_cam_server_center_of_mass_cuts_at_5_sigma_without_renormalising():
    profile = np.array([3.0, 2.0, 4.0, 8.0, 4.0, 2.0, 7.0])
    # offset 2 -> weights [1, 0, 2, 6, 2, 0, 5], sum 16; mean 3, sigma 0.5: |x - 3| > 2.5 drops x = 0 and 6,
    # leaving p = [0, 0, 2, 6, 2, 0, 0] / 16 (sum 10/16, not scaled back to 1).
    com, rms = gauss_center_of_mass_rms(AXIS7, profile, 2.0, 3.0, 0.5)
    assert com == pytest.approx((2 * 2 + 3 * 6 + 4 * 2) / 16, abs=1e-12)  # 1.875; renormalised it would be 3
    variance = ((2 - 1.875) ** 2 * 2 + (3 - 1.875) ** 2 * 6 + (4 - 1.875) ** 2 * 2) / 16
    assert rms == pytest.approx(math.sqrt(variance), abs=1e-12)
    # 5 sigma = 3 keeps x = 0 and 6 (exactly 3 away): the whole offset-subtracted profile, sum 1.
    com, _ = gauss_center_of_mass_rms(AXIS7, profile, 2.0, 3.0, 0.6)
    assert com == pytest.approx((0 * 1 + 2 * 2 + 3 * 6 + 4 * 2 + 6 * 5) / 16, abs=1e-12)


def test_cam_server_center_of_mass_depends_on_the_axis_zero():
    # Not renormalised, sum(p) = 10/16 above: shifting the axis by 10 moves the result by 10 * 10/16.
    profile = np.array([3.0, 2.0, 4.0, 8.0, 4.0, 2.0, 7.0])
    com, _ = gauss_center_of_mass_rms(AXIS7 + 10.0, profile, 2.0, 13.0, 0.5)
    assert com == pytest.approx(1.875 + 10.0 * 10 / 16, abs=1e-12)


def test_cam_server_center_of_mass_of_a_gaussian_on_a_pedestal():
    profile = gauss(COORDS, 500.0, 300.0, 61.3, 7.0)  # the pedestal pulls the raw centre towards 99.5
    com, rms = gauss_center_of_mass_rms(COORDS, profile, 500.0, 61.3, 7.0)
    assert com == pytest.approx(61.3, abs=0.01) and rms == pytest.approx(7.0, abs=0.01)
    raw, _ = center_of_mass_rms(COORDS, profile)
    assert raw > 61.3 + 20


def test_cam_server_center_of_mass_without_signal_above_the_offset():
    assert gauss_center_of_mass_rms(AXIS7, np.full(7, 4.0), 4.0, 3.0, 1.0) == (None, None)


def test_fwhm_is_the_distance_between_the_bounding_samples():
    profile = np.array([0.0, 1.0, 3.0, 6.0, 10.0, 7.0, 4.0, 2.0, 0.0])
    # Half height 5 above the minimum 0: nearest samples at or below it are index 2 (3) and 6 (4).
    assert fwhm(np.arange(9.0), profile) == 4.0
    assert interpolated_fwhm(profile) == pytest.approx((5 + 2 / 3) - (2 + 2 / 3))  # 3: only the fit's start
    assert fwhm(10.0 - 0.5 * np.arange(9.0), profile) == 2.0  # on a calibrated, descending axis
    assert fwhm(np.arange(5.0), np.array([0.0, 5.0, 10.0, 5.0, 0.0])) == 2.0  # exactly half is outside


def test_fwhm_runs_to_the_end_of_the_profile_on_a_side_without_a_crossing():
    assert fwhm(np.arange(5.0), np.array([0.0, 2.0, 10.0, 9.0, 8.0])) == 4.0 - 1.0
    assert fwhm(np.arange(5.0), np.array([10.0, 9.0, 8.0, 1.0, 0.0])) == 3.0 - 0.0


def test_fwhm_of_a_sampled_gaussian_is_within_a_sample_each_side():
    width = fwhm(COORDS, gauss(COORDS, 3.0, 50.0, 90.4, 7.5))
    half = FWHM_PER_SIGMA * 7.5 / 2
    assert width == math.ceil(90.4 + half) - math.floor(90.4 - half)


@pytest.mark.parametrize("profile", [np.zeros(5), np.ones(5), np.array([1.0]), np.array([1.0, np.nan, 2.0])])
def test_fwhm_is_none_without_a_peak(profile):
    assert fwhm(np.arange(float(profile.size)), profile) is None


@pytest.mark.parametrize("profile", [np.zeros(5), np.ones(5), np.array([5.0, 4.0, 3.0]), np.array([1.0, 2.0]),
                                     np.array([0.0, 1.0, 2.0, 3.0])])
def test_interpolated_fwhm_is_none_without_a_whole_peak(profile):
    assert interpolated_fwhm(profile) is None


def test_good_region_follows_cam_server():
    profile = np.array([0, 0, 1, 5, 10, 5, 1, 0, 0, 0], dtype=np.float64)
    # Level 0.3 * 10 = 3. From the peak (4): first below on the left is 2, on the right 6. Width 4;
    # gfscale 1.8 adds 4 * 0.8 / 2 = 1.6 each side: [0.4, 7.6] -> int -> [0, 7).
    assert good_region(profile, 0.3, 1.8) == (0, 7)
    assert good_region(profile, 0.3, 1.0) == (2, 6)
    assert good_region(profile, 0.3, 100.0) == (0, 9)  # the end is clipped at the last index
    assert good_region(profile, 1.0, 1.0) == (3, 5)  # level = max: the peak and the sample before it
    assert good_region(profile, 0.3, 0.5) == (3, 5)  # [2 + 1, 6 - 1]
    assert good_region(profile, 0.0, 1.8) == (4, 4)  # nothing below the level: empty
    assert good_region(np.ones(4), 0.3, 1.8) == (0, 0)  # flat: empty, as cam_server's (its fit then fails)
    assert good_region(np.zeros(0), 0.3, 1.8) == (0, 0)


def test_good_region_never_looks_at_index_0():
    # Only index 0 is below the level 3 on the left: cam_server's search stops at 1, so the start stays at the peak.
    assert good_region(np.array([1.0, 10.0, 9.0, 8.0, 0.0]), 0.3, 1.0) == (1, 4)


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


def test_fit_on_a_finely_calibrated_axis():
    # Slices are fitted on calibrated axes: a 0.02 unit step must not hit a floor meant for pixels.
    axis = 5.0 - 0.02 * COORDS
    fit = gauss_fit(axis, gauss(COORDS, 2.0, 80.0, 101.7, 1.5))
    assert fit.method == "gauss"
    assert fit.mean == pytest.approx(5.0 - 0.02 * 101.7, abs=1e-4)
    assert fit.standard_deviation == pytest.approx(0.02 * 1.5, rel=1e-3)


def test_fit_on_axis_maps_position_and_width_only():
    fit = gauss_fit(COORDS, gauss(COORDS, 12.0, 300.0, 97.3, 9.1)).on_axis(5.0, -0.02)
    assert fit.mean == pytest.approx(5.0 - 0.02 * 97.3, abs=1e-4)
    assert fit.standard_deviation == pytest.approx(0.02 * 9.1, abs=1e-4)
    assert fit.amplitude == pytest.approx(300.0, rel=1e-3) and fit.offset == pytest.approx(12.0, abs=0.3)
