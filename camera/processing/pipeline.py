"""``process()``: one frame in, cam_server's processing results out, as JSON-ready values.

Order, as in cam_server's pipeline: background subtraction (clamped at 0), threshold, region
of interest, then statistics. Background and threshold are pixel-wise, so they are applied to
the region only, which gives the same numbers for less work. Gaussian fits run in pixel
coordinates (well conditioned) and are mapped onto cam_server's axes (``offset + scale *
pixel``); every other statistic is computed on those axes, as cam_server does, because its
centre of mass is not invariant under a shift of the axis. Non-finite pixels (NaN, inf) count
as 0 and are left out of min_value/max_value. docs/camera-processing.md defines each field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .camera import AxisCalibration
from .config import GoodRegionConfig, Orientation, ProcessingConfig, SlicesConfig
from .fit import GaussFit, gauss_fit
from .slices import SliceResult, linear_fit, slice_count, slice_image
from .stats import center_of_mass_rms, fwhm, gauss_center_of_mass_rms, good_region, profiles
from .transforms import region_of_interest, to_mono, working_dtype

_PIXELS = AxisCalibration()
_FIT_FIELDS = ("axis", "profile", "fit_gauss_function", "fit_offset", "fit_amplitude", "fit_mean",
               "fit_standard_deviation", "fit_method")


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
    if config.image_threshold is not None and config.image_threshold > 0:  # cam_server: 0 or less is off
        np.copyto(work, 0, where=work < config.image_threshold)

    height, width = work.shape
    x_pixels = np.arange(width, dtype=np.float64) + x_start  # pixel indices of the whole frame
    y_pixels = np.arange(height, dtype=np.float64) + y_start
    x_axis = cal.x_offset + cal.x_scale * x_pixels  # cam_server's x_axis / y_axis
    y_axis = cal.y_offset + cal.y_scale * y_pixels
    x_profile, y_profile = profiles(work)
    result: dict[str, Any] = {"width": width, "height": height, **_min_max(work, valid),
                              "intensity": _number(x_profile.sum())}
    x_fit = _fit(x_pixels, x_profile, cal.x_offset, cal.x_scale)
    y_fit = _fit(y_pixels, y_profile, cal.y_offset, cal.y_scale)
    result |= _axis_results("x", x_axis, x_profile, x_fit)
    result |= _axis_results("y", y_axis, y_profile, y_fit)

    region: np.ndarray | None = work
    region_x, region_y = x_axis, y_axis
    if config.image_good_region is not None:
        bounds = _good_region_bounds(x_profile, y_profile, config.image_good_region)
        if bounds is None:  # cam_server: every good-region (and slice) field is null
            region, x_fit, y_fit = None, None, None
            result |= {"good_region": None, "gr_intensity": None, **_fit_results("gr_x", None, None, None),
                       **_fit_results("gr_y", None, None, None)}
        else:
            x0, y0, x1, y1 = bounds
            region, region_x, region_y = work[y0:y1, x0:x1], x_axis[x0:x1], y_axis[y0:y1]
            gr_x_profile, gr_y_profile = profiles(region)
            x_fit = _fit(x_pixels[x0:x1], gr_x_profile, cal.x_offset, cal.x_scale)  # slices are placed by these
            y_fit = _fit(y_pixels[y0:y1], gr_y_profile, cal.y_offset, cal.y_scale)
            result["good_region"] = [x0, y0, x1, y1]
            result["gr_intensity"] = _number(gr_x_profile.sum())
            result |= _fit_results("gr_x", region_x, gr_x_profile, x_fit)
            result |= _fit_results("gr_y", region_y, gr_y_profile, y_fit)
    if config.image_slices is not None:
        result |= _slice_results(region, region_x, region_y, x_fit, y_fit, config.image_slices)
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


def _fit(pixels: np.ndarray, profile: np.ndarray, offset: float, scale: float) -> GaussFit | None:
    """Fit in pixels, report on the calibrated axis."""
    fit = gauss_fit(pixels, profile)
    return None if fit is None else fit.on_axis(offset, scale)


def _good_region_bounds(x_profile: np.ndarray, y_profile: np.ndarray,
                        config: GoodRegionConfig) -> tuple[int, int, int, int] | None:
    """``(x_start, y_start, x_end, y_end)``; None when either side is empty (cam_server's fit fails there)."""
    x0, x1 = good_region(x_profile, config.threshold, config.gfscale)
    y0, y1 = good_region(y_profile, config.threshold, config.gfscale)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def _axis_results(name: str, axis: np.ndarray, profile: np.ndarray, fit: GaussFit | None) -> dict[str, Any]:
    center, rms = (None, None) if fit is None else gauss_center_of_mass_rms(
        axis, profile, fit.offset, fit.mean, fit.standard_deviation)
    raw_center, _ = center_of_mass_rms(axis, profile)
    return {
        f"{name}_center_of_mass": _number(center),
        f"{name}_rms": _number(rms),
        f"{name}_center_of_mass_raw": _number(raw_center),
        f"{name}_fwhm": _number(fwhm(axis, profile)),
        **_fit_results(name, axis, profile, fit),
    }


def _fit_results(name: str, axis: np.ndarray | None, profile: np.ndarray | None,
                 fit: GaussFit | None) -> dict[str, Any]:
    """Axis, profile and fit fields under ``name`` ("x", "gr_y", ...): cam_server's names, all null without an axis."""
    if axis is None or profile is None:
        return {f"{name}_{field}": None for field in _FIT_FIELDS}
    return {
        f"{name}_axis": _list(axis),
        f"{name}_profile": _list(profile),
        f"{name}_fit_gauss_function": None if fit is None else _list(fit.function(axis)),
        f"{name}_fit_offset": None if fit is None else _number(fit.offset),
        f"{name}_fit_amplitude": None if fit is None else _number(fit.amplitude),
        f"{name}_fit_mean": None if fit is None else _number(fit.mean),
        f"{name}_fit_standard_deviation": None if fit is None else _number(fit.standard_deviation),
        f"{name}_fit_method": None if fit is None else fit.method,
    }


def _slice_results(region: np.ndarray | None, x_axis: np.ndarray, y_axis: np.ndarray, x_fit: GaussFit | None,
                   y_fit: GaussFit | None, config: SlicesConfig) -> dict[str, Any]:
    """Slices along the configured orientation; coupling always from horizontal ones, as cam_server."""
    along = y_fit if config.orientation == "vertical" else x_fit
    chosen = _slices(region, x_axis, y_axis, along, config, config.orientation)
    horizontal = chosen if config.orientation == "horizontal" else _slices(
        region, x_axis, y_axis, x_fit, config, "horizontal")
    result: dict[str, Any] = {"slice_orientation": config.orientation, "slice_amount": chosen.amount,
                              "slice_length": _number(chosen.length)}
    for i in range(chosen.amount):
        stats = chosen.slices[i] if i < len(chosen.slices) else None
        result[f"slice_{i}_center_x"] = None if stats is None else _number(stats.center_x)
        result[f"slice_{i}_center_y"] = None if stats is None else _number(stats.center_y)
        result[f"slice_{i}_standard_deviation"] = None if stats is None else _number(stats.standard_deviation)
        result[f"slice_{i}_intensity"] = None if stats is None else _number(stats.intensity)
    result |= {"coupling": None, "coupling_slope": None, "coupling_offset": None}
    points = [(s.center_x, s.center_y) for s in horizontal.slices if s is not None]
    line = linear_fit([p[0] for p in points], [p[1] for p in points])
    if line is not None and x_fit is not None:
        slope, offset = line
        result |= {"coupling": _number(slope * x_fit.standard_deviation ** 2), "coupling_slope": _number(slope),
                   "coupling_offset": _number(offset)}
    return result


def _slices(region: np.ndarray | None, x_axis: np.ndarray, y_axis: np.ndarray, fit: GaussFit | None,
            config: SlicesConfig, orientation: Orientation) -> SliceResult:
    """Slices around ``fit`` (along the cut axis); none without a good region or a beam on that axis."""
    if region is None or fit is None:
        return SliceResult(amount=slice_count(config.number_of_slices), length=None, slices=[])
    return slice_image(region, x_axis, y_axis, fit.mean, fit.standard_deviation,
                       number_of_slices=config.number_of_slices, scale=config.scale, orientation=orientation)


def _number(value: Any) -> float | None:
    """A JSON number: Python float, or None for missing and non-finite values."""
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def _list(values: np.ndarray) -> list[float | None]:
    if np.isfinite(values).all():
        return values.tolist()
    return [v if math.isfinite(v) else None for v in values.tolist()]
