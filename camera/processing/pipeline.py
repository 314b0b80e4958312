"""``process()``: one frame in, cam_server's processing results out, as JSON-ready values.

Order, as in cam_server's pipeline: background subtraction (clamped at 0), threshold, region
of interest, then statistics. Background and threshold are pixel-wise, so they are applied to
the region only, which gives the same numbers for less work. Statistics are computed in pixel
coordinates of the camera-transformed frame and mapped to units by the axis calibration at the
end. Non-finite pixels (NaN, inf) count as 0 and are left out of min_value/max_value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from camera.processing.camera import AxisCalibration
from camera.processing.config import Orientation, ProcessingConfig, SlicesConfig
from camera.processing.fit import GaussFit, gauss_fit
from camera.processing.slices import SliceResult, linear_fit, slice_count, slice_image
from camera.processing.stats import center_of_mass_rms, fwhm, good_region, profiles
from camera.processing.transforms import region_of_interest, to_mono, working_dtype

_PIXELS = AxisCalibration()


def process(image: np.ndarray, config: ProcessingConfig, background: np.ndarray | None = None, *,
            calibration: AxisCalibration | None = None) -> dict[str, Any]:
    """Results for one camera-transformed frame (see ``camera_transform``).

    ``background`` (same shape as the frame, e.g. from ``collect_background``) is used only when
    ``config.image_background_enable`` is set. Raises ValueError for a missing or mis-shaped
    background, an ROI outside the frame or a non-numeric image; never for the frame's content.
    """
    cal = calibration or _PIXELS
    mono = to_mono(np.asarray(image))
    if mono.size == 0:
        raise ValueError(f"image: empty array of shape {mono.shape}")
    bg = _background(mono, config, background)
    x_start = y_start = 0
    roi = config.image_region_of_interest
    if roi is not None:
        mono = region_of_interest(mono, roi)
        bg = None if bg is None else bg[roi.y_offset:roi.y_offset + roi.height, roi.x_offset:roi.x_offset + roi.width]
        x_start, y_start = roi.x_offset, roi.y_offset

    work = mono.astype(working_dtype(mono.dtype))
    if bg is not None:
        np.subtract(work, bg, out=work, casting="unsafe")
        np.maximum(work, 0, out=work)
    valid = None
    if mono.dtype.kind == "f" or bg is not None:
        finite = np.isfinite(work)
        if not finite.all():
            valid = finite
            np.copyto(work, 0, where=~finite)
    if config.image_threshold is not None:
        np.copyto(work, 0, where=work < config.image_threshold)

    height, width = work.shape
    x_coords = np.arange(width, dtype=np.float64) + x_start
    y_coords = np.arange(height, dtype=np.float64) + y_start
    x_profile, y_profile = profiles(work)
    result: dict[str, Any] = {"width": width, "height": height, **_min_max(work, valid),
                              "intensity": _number(x_profile.sum())}
    x_fit, y_fit = gauss_fit(x_coords, x_profile), gauss_fit(y_coords, y_profile)
    result |= _axis_results("x", x_coords, x_profile, x_fit, cal.x_offset, cal.x_scale)
    result |= _axis_results("y", y_coords, y_profile, y_fit, cal.y_offset, cal.y_scale)

    region, region_x, region_y = work, x_coords, y_coords
    if config.image_good_region is not None:
        threshold, gfscale = config.image_good_region.threshold, config.image_good_region.gfscale
        x0, x1 = good_region(x_profile, threshold, gfscale)
        y0, y1 = good_region(y_profile, threshold, gfscale)
        region, region_x, region_y = work[y0:y1, x0:x1], x_coords[x0:x1], y_coords[y0:y1]
        gr_x_profile, gr_y_profile = profiles(region)
        x_fit = gauss_fit(region_x, gr_x_profile)  # slices are placed by the good region's fits
        y_fit = gauss_fit(region_y, gr_y_profile)
        result["good_region"] = [x0, y0, x1, y1]
        result["gr_intensity"] = _number(gr_x_profile.sum())
        result |= _fit_results("gr_x", region_x, gr_x_profile, x_fit, cal.x_offset, cal.x_scale)
        result |= _fit_results("gr_y", region_y, gr_y_profile, y_fit, cal.y_offset, cal.y_scale)
    if config.image_slices is not None:
        result |= _slice_results(region, region_x, region_y, x_fit, y_fit, config.image_slices, cal)
    result["processing_parameters"] = config.to_dict()
    return result


def collect_background(frames: Iterable[np.ndarray]) -> np.ndarray:
    """The float32 mean of camera-transformed frames (RGB ones as their channel sum), for subtraction."""
    total: np.ndarray | None = None
    count = 0
    for frame in frames:
        mono = to_mono(np.asarray(frame))
        if total is None:
            total = np.zeros(mono.shape, dtype=np.float64)
        elif mono.shape != total.shape:
            raise ValueError(f"frames: frame {count} has shape {mono.shape}, the first had {total.shape}")
        total += mono
        count += 1
    if total is None:
        raise ValueError("frames: no frame to average")
    return (total / count).astype(np.float32)


def _background(mono: np.ndarray, config: ProcessingConfig, background: np.ndarray | None) -> np.ndarray | None:
    if not config.image_background_enable:
        return None
    if background is None:
        raise ValueError("image_background_enable: set, but no background was given")
    bg = np.asarray(background)
    if bg.dtype.kind not in "iuf":
        raise ValueError(f"background: expected a real numeric dtype, got {bg.dtype}")
    if bg.shape != mono.shape:
        raise ValueError(f"background: shape {bg.shape} does not match the image shape {mono.shape}")
    return bg


def _min_max(work: np.ndarray, valid: np.ndarray | None) -> dict[str, float | None]:
    if valid is None:
        return {"min_value": _number(work.min()), "max_value": _number(work.max())}
    if not valid.any():
        return {"min_value": None, "max_value": None}
    return {"min_value": _number(work.min(where=valid, initial=np.inf)),
            "max_value": _number(work.max(where=valid, initial=-np.inf))}


def _axis_results(name: str, coords: np.ndarray, profile: np.ndarray, fit: GaussFit | None, offset: float,
                  scale: float) -> dict[str, Any]:
    center, rms = center_of_mass_rms(coords, profile)
    width = fwhm(profile)
    return {
        f"{name}_center_of_mass": _position(center, offset, scale),
        f"{name}_rms": _length(rms, scale),
        f"{name}_fwhm": _length(width, scale),
        **_fit_results(name, coords, profile, fit, offset, scale),
    }


def _fit_results(name: str, coords: np.ndarray, profile: np.ndarray, fit: GaussFit | None, offset: float,
                 scale: float) -> dict[str, Any]:
    """Axis, profile and fit fields under ``name`` ("x", "gr_y", ...): cam_server's names."""
    return {
        f"{name}_axis": _list(offset + scale * coords),
        f"{name}_profile": _list(profile),
        f"{name}_fit_gauss_function": None if fit is None else _list(fit.function(coords)),
        f"{name}_fit_offset": None if fit is None else _number(fit.offset),
        f"{name}_fit_amplitude": None if fit is None else _number(fit.amplitude),
        f"{name}_fit_mean": None if fit is None else _position(fit.mean, offset, scale),
        f"{name}_fit_standard_deviation": None if fit is None else _length(fit.standard_deviation, scale),
        f"{name}_fit_method": None if fit is None else fit.method,
    }


def _slice_results(region: np.ndarray, x_coords: np.ndarray, y_coords: np.ndarray, x_fit: GaussFit | None,
                   y_fit: GaussFit | None, config: SlicesConfig, cal: AxisCalibration) -> dict[str, Any]:
    """Slices along the configured orientation; coupling always from horizontal ones, as cam_server."""
    along = y_fit if config.orientation == "vertical" else x_fit
    chosen = _slices(region, x_coords, y_coords, along, config, config.orientation)
    horizontal = chosen if config.orientation == "horizontal" else _slices(
        region, x_coords, y_coords, x_fit, config, "horizontal")
    amount = chosen.amount
    cut_scale = cal.y_scale if config.orientation == "vertical" else cal.x_scale
    profile_scale = cal.x_scale if config.orientation == "vertical" else cal.y_scale
    result: dict[str, Any] = {"slice_orientation": config.orientation, "slice_amount": amount,
                              "slice_length": _length(float(chosen.width), cut_scale) if chosen.slices else None}
    for i in range(amount):
        stats = chosen.slices[i] if i < len(chosen.slices) else None
        result[f"slice_{i}_center_x"] = None if stats is None else _position(stats.center_x, cal.x_offset,
                                                                               cal.x_scale)
        result[f"slice_{i}_center_y"] = None if stats is None else _position(stats.center_y, cal.y_offset,
                                                                               cal.y_scale)
        result[f"slice_{i}_standard_deviation"] = None if stats is None else _length(stats.standard_deviation,
                                                                                      profile_scale)
        result[f"slice_{i}_intensity"] = None if stats is None else _number(stats.intensity)
    result |= {"coupling": None, "coupling_slope": None, "coupling_offset": None}
    points = [(cal.x_offset + cal.x_scale * s.center_x, cal.y_offset + cal.y_scale * s.center_y)
              for s in horizontal.slices if s is not None]
    line = linear_fit([p[0] for p in points], [p[1] for p in points])
    sigma_x = None if x_fit is None else _length(x_fit.standard_deviation, cal.x_scale)
    if line is not None and sigma_x is not None:
        slope, offset = line
        result |= {"coupling": _number(slope * sigma_x ** 2), "coupling_slope": _number(slope),
                   "coupling_offset": _number(offset)}
    return result


def _slices(region: np.ndarray, x_coords: np.ndarray, y_coords: np.ndarray, fit: GaussFit | None,
            config: SlicesConfig, orientation: Orientation) -> SliceResult:
    """Slices around ``fit`` (along the cut axis); none when that axis has no beam."""
    if fit is None:
        return SliceResult(amount=slice_count(config.number_of_slices), width=0, slices=[])
    return slice_image(region, x_coords, y_coords, fit.mean, fit.standard_deviation,
                       number_of_slices=config.number_of_slices, scale=config.scale, orientation=orientation)


def _number(value: Any) -> float | None:
    """A JSON number: Python float, or None for missing and non-finite values."""
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def _position(value: float | None, offset: float, scale: float) -> float | None:
    return None if value is None else _number(offset + scale * value)


def _length(value: float | None, scale: float) -> float | None:
    return None if value is None else _number(abs(scale) * value)


def _list(values: np.ndarray) -> list[float | None]:
    if np.isfinite(values).all():
        return values.tolist()
    return [v if math.isfinite(v) else None for v in values.tolist()]
