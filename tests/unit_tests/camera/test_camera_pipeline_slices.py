"""Slices of process() on tilted synthetic beams (cam_server's bands; see test_camera_pipeline.py
for the beam and docs/camera-processing.md for the definitions)."""

from __future__ import annotations

import numpy as np
import pytest

from camera.processing import AxisCalibration, process
from tests.unit_tests.camera.beams import assert_json_ready, beam, config


def band_mean(middle: float, width: float, center: float, sigma: float) -> float:
    """Intensity-weighted mean position across a band of ``width`` pixels of a Gaussian beam.

    As in cam_server, a band's reported middle is the first pixel of its second half."""
    pixels = middle - width // 2 + np.arange(int(width))
    weights = np.exp(-0.5 * ((pixels - center) / sigma) ** 2)
    return float(pixels @ weights / weights.sum())


def test_horizontal_slices_of_a_tilted_beam():
    # Each band's y-profile is a mixture of Gaussians spread along the tilt; its Gaussian fit (cam_server's
    # per-slice fit) sits within 0.05 px of the mixture's weighted mean.
    slope, x0 = 0.4, 150.4
    image = beam(offset=0.0, x0=x0, y0=128.0, sx=20.0, sy=6.0, shear_y=slope)
    result = process(image, config(image_good_region={"threshold": 0.2, "gfscale": 2.0},
                                   image_slices={"number_of_slices": 5, "scale": 2.0, "orientation": "horizontal"}))
    assert result["slice_orientation"] == "horizontal" and result["slice_amount"] == 5
    # 2 sigma / 5 = 8 px: index(154.4) - index(150.4) = 4 = half a band; the middle band is columns 146..153.
    assert result["slice_length"] == 8.0
    assert [result[f"slice_{i}_center_x"] for i in range(5)] == [150.0 + 8.0 * k for k in (-2, -1, 0, 1, 2)]
    for i in range(5):
        mean_x = band_mean(result[f"slice_{i}_center_x"], result["slice_length"], x0, 20.0)
        assert result[f"slice_{i}_center_y"] == pytest.approx(128.0 + slope * (mean_x - x0), abs=0.05)
        assert result[f"slice_{i}_standard_deviation"] == pytest.approx(6.0, rel=0.02)
        assert result[f"slice_{i}_intensity"] > 0
    assert result["coupling_slope"] == pytest.approx(slope, abs=0.02)
    assert result["coupling"] == pytest.approx(result["coupling_slope"] * result["gr_x_fit_standard_deviation"] ** 2)
    assert_json_ready(result)


def test_vertical_slices_of_a_tilted_beam_and_even_count():
    slope, y0 = -0.5, 128.3
    image = beam(offset=0.0, x0=150.0, y0=y0, sx=5.0, sy=24.0, shear_x=slope)
    result = process(image, config(image_slices={"number_of_slices": 4, "scale": 3.0}))
    assert result["slice_orientation"] == "vertical"
    assert result["slice_amount"] == 5  # even counts get a middle slice
    assert result["slice_length"] == 14.0  # 3 sigma / 5 = 14.4: index(135.5) - index(128.3) = 7 = half a band
    assert [result[f"slice_{i}_center_y"] for i in range(5)] == [128.0 + 14.0 * k for k in (-2, -1, 0, 1, 2)]
    for i in range(5):
        mean_y = band_mean(result[f"slice_{i}_center_y"], result["slice_length"], y0, 24.0)
        assert result[f"slice_{i}_center_x"] == pytest.approx(150.0 + slope * (mean_y - y0), abs=0.05)


def test_slices_on_a_calibrated_axis():
    # cam_server places bands on its axes: with a descending calibration the same rows are cut, and the
    # centres, widths and length come out in units.
    calibration = AxisCalibration(x_offset=5.0, x_scale=-0.02, y_offset=-1.0, y_scale=0.5)
    cfg = config(image_slices={"number_of_slices": 3, "scale": 2.0})
    image = beam(offset=0.0, x0=150.0, y0=128.3, sx=10.0, sy=24.0)
    pixels, units = process(image, cfg), process(image, cfg, calibration=calibration)
    for i in range(3):
        assert units[f"slice_{i}_center_y"] == -1.0 + 0.5 * pixels[f"slice_{i}_center_y"]
        assert units[f"slice_{i}_center_x"] == pytest.approx(5.0 - 0.02 * pixels[f"slice_{i}_center_x"], abs=1e-6)
        assert units[f"slice_{i}_standard_deviation"] == pytest.approx(
            0.02 * pixels[f"slice_{i}_standard_deviation"], rel=1e-6)
    assert units["slice_length"] == 0.5 * pixels["slice_length"]


def test_slices_that_do_not_fit_are_null():
    image = beam(offset=0.0, x0=150.0, y0=20.0, sx=20.0, sy=10.0)
    result = process(image, config(image_slices={"number_of_slices": 11, "scale": 6.0}))
    filled = [i for i in range(11) if result[f"slice_{i}_center_x"] is not None]
    assert 1 <= len(filled) < 11 and filled == list(range(len(filled)))
    assert result[f"slice_{10}_intensity"] is None
    assert_json_ready(result)
