"""process() on synthetic frames whose truth is known.

Beam: a 2-D Gaussian sampled at pixel centres, centre (120.3, 135.7) px, sigma (12, 18) px,
peak 1000 on an offset of 10, in a 300 x 256 frame (the tails at the edges are < 1e-15).
Tolerances: noise-free 0.01 px on centres and widths, 0.1 % on amplitude and offset; with Poisson
plus Gaussian (sigma 3) noise from a seeded RNG, 0.1 px on centres, 1 % on widths, 2 % on
amplitude. cam_server's FWHM is exact: the distance between the samples bounding the half height
of the analytic profile. docs/camera-processing.md defines every field.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from camera.processing import AxisCalibration, CameraConfig, camera_transform, process
from tests.unit_tests.camera.beams import (
    AMPLITUDE,
    FWHM_PER_SIGMA,
    HEIGHT,
    OFFSET,
    SX,
    SY,
    WIDTH,
    X0,
    Y0,
    assert_json_ready,
    beam,
    cam_server_com_rms,
    config,
    sampled_fwhm,
)


def test_noise_free_beam_statistics_and_fit():
    result = process(beam(offset=0.0), config())
    assert result["width"] == WIDTH and result["height"] == HEIGHT
    assert result["x_center_of_mass"] == pytest.approx(X0, abs=0.01)
    assert result["y_center_of_mass"] == pytest.approx(Y0, abs=0.01)
    assert result["x_rms"] == pytest.approx(SX, abs=0.01)
    assert result["y_rms"] == pytest.approx(SY, abs=0.01)
    assert result["max_value"] == pytest.approx(AMPLITUDE, rel=0.01)
    assert result["min_value"] == pytest.approx(0.0, abs=1e-6)
    assert result["intensity"] == pytest.approx(AMPLITUDE * 2 * math.pi * SX * SY, rel=1e-6)
    assert result["x_axis"] == list(range(WIDTH)) and result["y_axis"] == list(range(HEIGHT))
    assert len(result["x_profile"]) == WIDTH and len(result["y_profile"]) == HEIGHT
    assert_json_ready(result)


def test_noise_free_fit_on_an_offset():
    result = process(beam(), config())
    for axis, center, sigma, other_sigma, length in (("x", X0, SX, SY, HEIGHT), ("y", Y0, SY, SX, WIDTH)):
        # A column sum of the 2-D Gaussian is a Gaussian of amplitude A * sqrt(2 pi) * sigma_other.
        profile_amplitude = AMPLITUDE * math.sqrt(2 * math.pi) * other_sigma
        assert result[f"{axis}_fit_method"] == "gauss"
        assert result[f"{axis}_fit_mean"] == pytest.approx(center, abs=0.01)
        assert result[f"{axis}_fit_standard_deviation"] == pytest.approx(sigma, abs=0.01)
        assert result[f"{axis}_fit_amplitude"] == pytest.approx(profile_amplitude, rel=1e-3)
        assert result[f"{axis}_fit_offset"] == pytest.approx(OFFSET * length, abs=1e-3 * profile_amplitude)
        assert result[f"{axis}_fwhm"] == sampled_fwhm(center, sigma)
        curve = np.array(result[f"{axis}_fit_gauss_function"])
        assert np.allclose(curve, result[f"{axis}_profile"], rtol=1e-4)
    # cam_server's centre of mass and RMS are the beam's: taken above the fitted offset.
    assert result["x_center_of_mass"] == pytest.approx(X0, abs=0.01)
    assert result["y_center_of_mass"] == pytest.approx(Y0, abs=0.01)
    assert result["x_rms"] == pytest.approx(SX, abs=0.01) and result["y_rms"] == pytest.approx(SY, abs=0.01)
    # The raw centre of mass includes the offset's: the mixture of beam and uniform pedestal.
    beam_sum, pedestal = AMPLITUDE * 2 * math.pi * SX * SY, OFFSET * WIDTH * HEIGHT
    expected = (beam_sum * X0 + pedestal * (WIDTH - 1) / 2) / (beam_sum + pedestal)
    assert result["x_center_of_mass_raw"] == pytest.approx(expected, abs=0.01)


def test_a_beam_on_a_high_pedestal_keeps_its_centre_of_mass():
    # The simulated camera's proportions: sigma 25, peak 40000 on 1000, beam well off the frame's middle.
    width, height, x0, y0 = 640, 480, 100.3, 380.6
    result = process(beam(x0=x0, y0=y0, sx=25.0, sy=25.0, amplitude=40000.0, offset=1000.0, shape=(height, width)),
                     config())
    assert result["x_center_of_mass"] == pytest.approx(x0, abs=0.05)
    assert result["y_center_of_mass"] == pytest.approx(y0, abs=0.05)
    assert result["x_rms"] == pytest.approx(25.0, abs=0.05) and result["y_rms"] == pytest.approx(25.0, abs=0.05)
    # The pedestal holds twice the beam's intensity: the raw centre sits tens of pixels towards the middle.
    assert result["x_center_of_mass_raw"] - x0 > 50 and y0 - result["y_center_of_mass_raw"] > 50


def test_noisy_beam():
    rng = np.random.default_rng(1234)
    image = rng.poisson(beam()).astype(np.float64) + rng.normal(0.0, 3.0, (HEIGHT, WIDTH))
    result = process(image, config())
    for axis, center, sigma in (("x", X0, SX), ("y", Y0, SY)):
        assert result[f"{axis}_fit_method"] == "gauss"
        assert result[f"{axis}_fit_mean"] == pytest.approx(center, abs=0.1)
        assert result[f"{axis}_fit_standard_deviation"] == pytest.approx(sigma, rel=0.01)
        assert abs(result[f"{axis}_fwhm"] - FWHM_PER_SIGMA * sigma) <= 2.0  # bounding samples, noisy
        assert result[f"{axis}_center_of_mass"] == pytest.approx(center, abs=0.1)
        assert result[f"{axis}_rms"] == pytest.approx(sigma, rel=0.02)
        assert (result[f"{axis}_center_of_mass"], result[f"{axis}_rms"]) == pytest.approx(
            cam_server_com_rms(result, axis), rel=1e-9)
    assert result["x_fit_amplitude"] == pytest.approx(AMPLITUDE * math.sqrt(2 * math.pi) * SY, rel=0.02)
    assert_json_ready(result)


def test_uint16_beam_with_background_subtracted():
    background = np.full((HEIGHT, WIDTH), 200.0, dtype=np.float32)
    image = np.round(beam(offset=200.0)).astype(np.uint16)
    result = process(image, config(image_background_enable=True), background)
    # Without the pedestal the moments are the beam's own (0.05 px: the frame is rounded to integers).
    assert result["x_center_of_mass"] == pytest.approx(X0, abs=0.05)
    assert result["y_center_of_mass"] == pytest.approx(Y0, abs=0.05)
    assert result["x_rms"] == pytest.approx(SX, abs=0.05)
    assert result["y_rms"] == pytest.approx(SY, abs=0.05)


def test_noisy_uint16_beam_with_background_subtracted():
    rng = np.random.default_rng(99)
    background = np.full((HEIGHT, WIDTH), 200.0, dtype=np.float32)
    image = rng.poisson(beam(offset=200.0)).astype(np.uint16)
    result = process(image, config(image_background_enable=True), background)
    # Clamping at 0 keeps the positive half of the pedestal's noise (~sqrt(200 / 2 pi) = 5.6 per pixel)
    # away from the beam but not under it: a pedestal with a dip that makes the fit ~1.5 % narrower.
    assert result["x_fit_mean"] == pytest.approx(X0, abs=0.1)
    assert result["y_fit_mean"] == pytest.approx(Y0, abs=0.1)
    assert result["x_fit_standard_deviation"] == pytest.approx(SX, rel=0.025)
    assert result["y_fit_standard_deviation"] == pytest.approx(SY, rel=0.025)
    assert result["min_value"] == 0.0


def test_background_larger_than_uint16_image_clamps_at_zero():
    image = np.full((4, 5), 100, dtype=np.uint16)
    background = np.full((4, 5), 150, dtype=np.uint16)
    result = process(image, config(image_background_enable=True), background)
    assert result["min_value"] == 0.0 and result["max_value"] == 0.0 and result["intensity"] == 0.0
    assert result["x_center_of_mass"] is None and result["x_center_of_mass_raw"] is None
    assert result["x_fit_mean"] is None and result["x_fwhm"] is None
    assert_json_ready(result)


def test_background_is_ignored_unless_enabled():
    image = np.full((3, 3), 7, dtype=np.uint8)
    assert process(image, config(), np.full((3, 3), 5.0))["max_value"] == 7.0


def test_threshold_zeroes_pixels_below_it():
    image = np.array([[1, 5, 9], [4, 5, 6]], dtype=np.int16)
    result = process(image, config(image_threshold=5))
    assert result["x_profile"] == [0.0, 10.0, 15.0]
    assert result["y_profile"] == [14.0, 11.0]
    assert result["min_value"] == 0.0 and result["max_value"] == 9.0


@pytest.mark.parametrize("threshold", [0, -1, -10.5])
def test_a_threshold_of_zero_or_less_is_off(threshold):
    # cam_server applies image_threshold only when it is > 0, so negative pixels survive.
    result = process(np.array([[-20, -5, 3, 9]], dtype=np.int16), config(image_threshold=threshold))
    assert result["x_profile"] == [-20.0, -5.0, 3.0, 9.0]


def test_threshold_after_background():
    image = np.array([[10, 20, 30]], dtype=np.uint16)
    result = process(image, config(image_background_enable=True, image_threshold=10), np.full((1, 3), 5))
    assert result["x_profile"] == [0.0, 15.0, 25.0]


def test_region_of_interest_keeps_full_frame_coordinates():
    result = process(beam(), config(image_region_of_interest=[60, 120, 70, 140]))
    assert result["width"] == 120 and result["height"] == 140
    assert result["x_axis"][0] == 60 and result["x_axis"][-1] == 179
    assert result["y_axis"][0] == 70 and result["y_axis"][-1] == 209
    assert result["x_fit_mean"] == pytest.approx(X0, abs=0.01)
    assert result["y_fit_mean"] == pytest.approx(Y0, abs=0.01)
    assert result["x_fit_offset"] == pytest.approx(OFFSET * 140, rel=1e-3)


def test_region_of_interest_crops_the_background_too():
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    background = np.full((3, 4), 1.0)
    background[1, 2] = 100.0
    result = process(image, config(image_background_enable=True, image_region_of_interest=[1, 2, 1, 2]), background)
    assert result["x_profile"] == [(5 - 1) + (9 - 1), 0 + (10 - 1)]


@pytest.mark.parametrize(("camera", "expected"), [
    ({"mirror_x": True}, (WIDTH - 1 - X0, Y0)),
    ({"mirror_y": True}, (X0, HEIGHT - 1 - Y0)),
    ({"mirror_x": True, "mirror_y": True}, (WIDTH - 1 - X0, HEIGHT - 1 - Y0)),
    ({"rotate": 1}, (Y0, WIDTH - 1 - X0)),
    ({"rotate": 2}, (WIDTH - 1 - X0, HEIGHT - 1 - Y0)),
    ({"rotate": 3}, (HEIGHT - 1 - Y0, X0)),
    ({"rotate": -1}, (HEIGHT - 1 - Y0, X0)),
    ({"rotate": 4}, (X0, Y0)),
    ({"binning_x": 2, "binning_y": 2}, ((X0 - 0.5) / 2, (Y0 - 0.5) / 2)),
    ({"binning_x": 3, "binning_y": 1, "binning_mean": True}, ((X0 - 1.0) / 3, Y0)),
])
def test_camera_geometry_moves_the_centre(camera, expected):
    frame = camera_transform(beam(offset=0.0), CameraConfig.from_dict(camera))
    result = process(frame, config())
    assert result["x_fit_mean"] == pytest.approx(expected[0], abs=0.01)
    assert result["y_fit_mean"] == pytest.approx(expected[1], abs=0.01)
    assert result["x_center_of_mass"] == pytest.approx(expected[0], abs=0.01)


def test_summed_binning_keeps_the_intensity_and_mean_divides_it():
    image = beam(offset=0.0)
    total = process(image, config())["intensity"]
    summed = process(camera_transform(image, CameraConfig(binning_x=2, binning_y=2)), config())
    mean = process(camera_transform(image, CameraConfig(binning_x=2, binning_y=2, binning_mean=True)), config())
    assert summed["intensity"] == pytest.approx(total, rel=1e-9)
    assert mean["intensity"] == pytest.approx(total / 4, rel=1e-9)
    assert summed["width"] == WIDTH // 2 and summed["height"] == HEIGHT // 2


def test_calibrated_axes():
    calibration = AxisCalibration(x_offset=5.0, x_scale=-0.02, y_offset=-1.0, y_scale=0.5)
    result = process(beam(), config(image_good_region={}), calibration=calibration)
    assert result["x_axis"][:2] == [5.0, pytest.approx(4.98)]
    assert result["x_fit_mean"] == pytest.approx(5.0 - 0.02 * X0, abs=0.01 * 0.02)
    assert result["x_fit_standard_deviation"] == pytest.approx(0.02 * SX, abs=0.01 * 0.02)
    assert result["x_fwhm"] == pytest.approx(sampled_fwhm(X0, SX, 0.02), abs=1e-9)
    assert result["y_fit_mean"] == pytest.approx(-1.0 + 0.5 * Y0, abs=0.01 * 0.5)
    assert result["x_rms"] == pytest.approx(0.02 * SX, abs=0.01 * 0.02)
    assert result["y_center_of_mass"] == pytest.approx(-1.0 + 0.5 * Y0, abs=0.01 * 0.5)
    assert result["x_center_of_mass_raw"] == pytest.approx(5.0 - 0.02 * process(beam(), config())[
        "x_center_of_mass_raw"], abs=1e-9)
    assert result["gr_x_fit_mean"] == pytest.approx(5.0 - 0.02 * X0, abs=0.01 * 0.02)
    # Amplitude and offset are intensities: the calibration leaves them alone.
    assert result["x_fit_amplitude"] == pytest.approx(process(beam(), config())["x_fit_amplitude"])


def test_camera_calibration_follows_cam_server():
    calibration = CameraConfig.from_dict({"camera_calibration": {}}).axis_calibration()
    result = process(np.ones((3, 101)), config(), calibration=calibration)
    # Default markers [0, 0, 100, 100], 100 units apart: origin at pixel 50, axis pointing left.
    assert result["x_axis"][0] == 50.0 and result["x_axis"][50] == 0.0 and result["x_axis"][100] == -50.0
    assert CameraConfig().axis_calibration() is None


def test_good_region_narrows_the_fit():
    # A second, wider and dimmer beam far to the right pulls the whole-frame fit; the good region
    # around the brightest column excludes it.
    image = beam(offset=0.0, x0=80.0, sx=8.0) + beam(offset=0.0, x0=230.0, sx=25.0, amplitude=120.0)
    result = process(image, config(image_good_region={"threshold": 0.3, "gfscale": 1.8}))
    x_start, y_start, x_end, y_end = result["good_region"]
    assert x_start < 80 < x_end < 200
    assert y_start < Y0 < y_end
    assert result["gr_x_fit_mean"] == pytest.approx(80.0, abs=0.05)
    assert result["gr_x_fit_standard_deviation"] == pytest.approx(8.0, rel=0.01)
    assert abs(result["x_center_of_mass_raw"] - 80.0) > 5  # the whole frame is biased
    assert result["gr_x_axis"][0] == x_start and len(result["gr_x_profile"]) == x_end - x_start
    assert result["gr_intensity"] < result["intensity"]
    assert result["gr_x_fit_method"] == "gauss"


EVERYTHING = {"image_threshold": 1.0, "image_good_region": {}, "image_slices": {"number_of_slices": 3}}


@pytest.mark.parametrize("image", [
    np.full((50, 60), 7, dtype=np.uint16),
    np.zeros((50, 60), dtype=np.uint8),
    np.zeros((1, 1), dtype=np.float32),
    np.full((1, 1), 42, dtype=np.int32),
    np.full((1, 1), np.nan),
    np.full((10, 10), np.nan, dtype=np.float32),
    np.full((10, 10), np.inf),
    np.arange(7.0).reshape(1, 7),
    np.arange(7.0).reshape(7, 1),
    np.array([[0.0, 1.0], [1.0, 0.0]]),
    -beam(),
], ids=["flat", "zero", "1x1-zero", "1x1", "1x1-nan", "all-nan", "all-inf", "1-row", "1-column", "2x2", "negative"])
def test_degenerate_frames_give_a_result(image):
    result = process(image, config(**EVERYTHING))
    assert (result["height"], result["width"]) == image.shape
    assert_json_ready(result)


def test_flat_and_zero_frames_have_no_centre():
    for image in (np.full((50, 60), 7, dtype=np.uint16), np.zeros((50, 60))):
        result = process(image, config(**EVERYTHING))
        assert result["x_fit_mean"] is None and result["x_fwhm"] is None and result["gr_x_fit_mean"] is None
        assert result["slice_0_center_x"] is None and result["coupling"] is None
        assert result["good_region"] is None and result["gr_intensity"] is None  # cam_server's region is empty
    flat = process(np.full((50, 60), 7, dtype=np.uint16), config())
    assert flat["x_center_of_mass"] is None  # no fitted offset to measure above
    assert flat["x_center_of_mass_raw"] == pytest.approx(29.5) and flat["min_value"] == flat["max_value"] == 7.0


def test_nan_pixels_count_as_zero_and_are_left_out_of_min_max():
    image = beam()
    image[10, 10] = image[200, 250] = np.nan
    image[0, 5] = -np.inf
    result = process(image, config(**EVERYTHING))
    assert result["min_value"] == pytest.approx(OFFSET) and result["max_value"] == pytest.approx(AMPLITUDE, rel=0.01)
    assert result["x_fit_mean"] == pytest.approx(X0, abs=0.01)
    assert_json_ready(result)
    assert process(np.full((3, 3), np.nan), config())["min_value"] is None


def test_nan_in_the_background():
    background = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    background[5, 5] = np.nan
    result = process(beam().astype(np.float32), config(image_background_enable=True), background)
    assert result["y_fit_mean"] == pytest.approx(Y0, abs=0.01)
    assert_json_ready(result)


def test_short_profile_falls_back_to_moments():
    result = process(np.array([[0.0, 1.0, 3.0, 1.0]]), config())
    assert result["x_fit_method"] == "moments"
    assert result["x_fit_mean"] == pytest.approx(2.0)
    assert result["x_fit_amplitude"] == 3.0 and result["x_fit_offset"] == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_every_numeric_dtype(dtype):
    top = min(float(np.iinfo(dtype).max) if np.dtype(dtype).kind in "iu" else 60000.0, 60000.0)
    image = np.round(beam(amplitude=top * 0.9, offset=top * 0.05)).astype(dtype)
    result = process(image, config(image_threshold=0, image_good_region={}))
    assert result["x_fit_mean"] == pytest.approx(X0, abs=0.05)
    assert result["y_fit_mean"] == pytest.approx(Y0, abs=0.05)
    assert result["max_value"] == float(image.max())


def test_uint32_sums_do_not_overflow_or_lose_precision():
    image = np.full((64, 64), 4_000_000_000, dtype=np.uint32)
    image[0, 0] += 1
    result = process(image, config())
    assert result["intensity"] == 4_000_000_000 * 64 * 64 + 1


def test_rgb_frames_are_processed_as_the_sum_of_their_channels():
    mono = beam(amplitude=200.0, offset=5.0)
    rgb = np.stack([np.round(mono * share) for share in (0.5, 0.3, 0.2)], axis=2).astype(np.uint8)
    result = process(rgb, config())
    assert result["width"] == WIDTH and result["height"] == HEIGHT
    assert result["intensity"] == float(rgb.astype(np.int64).sum())
    assert result["x_fit_mean"] == pytest.approx(X0, abs=0.05)
    rgba = np.concatenate([rgb, np.full((HEIGHT, WIDTH, 1), 255, np.uint8)], axis=2)
    assert process(rgba, config())["intensity"] == result["intensity"]


def test_processing_parameters_echo_the_config():
    cfg = config(image_threshold=2.5, image_region_of_interest=[0, 10, 0, 10], image_slices={})
    assert process(beam(), cfg)["processing_parameters"] == cfg.to_dict()


@pytest.mark.parametrize(("image", "cfg", "background", "key"), [
    (np.ones((4, 4)), {"image_background_enable": True}, None, "image_background_enable"),
    (np.ones((4, 4)), {"image_background_enable": True}, np.ones((4, 5)), "background"),
    (np.ones((4, 4)), {"image_background_enable": True}, np.array([["a"] * 4] * 4), "background"),
    (np.ones((4, 4)), {"image_region_of_interest": [2, 3, 0, 1]}, None, "image_region_of_interest"),
    (np.ones((4, 4), dtype=bool), {}, None, "image"),
    (np.ones((4, 4), dtype=complex), {}, None, "image"),
    (np.ones(4), {}, None, "image"),
    (np.ones((4, 4, 2)), {}, None, "image"),
    (np.ones((0, 4)), {}, None, "image"),
])
def test_caller_errors_raise_value_error_naming_the_key(image, cfg, background, key):
    with pytest.raises(ValueError, match=f"^{key}"):
        process(image, config(**cfg), background)
