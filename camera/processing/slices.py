"""cam_server's slices: equal bands across the beam, each with its own Gaussian fit.

Everything is on cam_server's axes (calibrated units when the camera has a calibration), as
cam_server places and measures the bands: the band edges come from ``find_index`` on the cut
axis, each band's centre on the cut axis is the axis value at its middle index, and on the
other axis the band's profile is fitted with a Gaussian (mean and sigma reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import Orientation
from .fit import gauss_fit


@dataclass(frozen=True, slots=True)
class SliceStats:
    """One band: its middle on the cut axis, the fitted centre and sigma on the other axis."""

    center_x: float
    center_y: float
    standard_deviation: float
    intensity: float


@dataclass(frozen=True, slots=True)
class SliceResult:
    amount: int  # requested number after the odd adjustment; len(slices) may be smaller
    length: float | None  # the middle band's extent on the cut axis; None when it does not fit
    slices: list[SliceStats | None]


def slice_count(number_of_slices: int) -> int:
    """Odd, so that the middle band sits on the beam centre."""
    return number_of_slices + 1 if number_of_slices % 2 == 0 else number_of_slices


def find_index(axis: np.ndarray, value: float) -> int:
    """cam_server's index of ``value`` on a monotonic axis of two or more samples.

    Ascending: the last sample at or below ``value`` (0 before the axis). Descending: the
    first sample at or below ``value`` (the last index past the axis' end).
    """
    if axis[1] > axis[0]:
        if value < axis[0]:
            return 0
        return int(np.searchsorted(axis, value, side="right")) - 1
    if value < axis[-1]:
        return axis.size - 1
    return int(np.searchsorted(-axis, -value, side="left"))


def slice_image(image: np.ndarray, x_axis: np.ndarray, y_axis: np.ndarray, center: float, sigma: float, *,
                number_of_slices: int, scale: float, orientation: Orientation) -> SliceResult:
    """Cut ``image`` into bands ``scale * sigma / n`` wide around ``center`` (cam_server's calculate_slices).

    ``center`` and ``sigma`` are along the cut axis, in its units: y for ``vertical`` (bands of
    rows), x for ``horizontal`` (bands of columns). A band is ``2 * h`` samples, where ``h`` is the
    index distance from ``center`` to ``center + size / 2`` (at least 1). Bands are added in
    pairs outwards from the middle one while they fit strictly inside the axis; others are omitted.
    """
    amount = slice_count(number_of_slices)
    vertical = orientation == "vertical"
    data = image if vertical else image.T  # rows of ``data`` are cut into bands
    cut_axis, profile_axis = (y_axis, x_axis) if vertical else (x_axis, y_axis)
    length = cut_axis.size
    if length < 2 or not (math.isfinite(center) and math.isfinite(sigma)):
        return SliceResult(amount=amount, length=None, slices=[])
    size = scale * sigma / amount
    middle = find_index(cut_axis, center)
    half = max(1, abs(find_index(cut_axis, center + size / 2.0) - middle))
    width = 2 * half
    start, end = middle - half, middle + half
    if start < 0 or end >= length:
        return SliceResult(amount=amount, length=None, slices=[])
    pairs = min((amount - 1) // 2, start // width, (length - 1 - end) // width)
    first = start - pairs * width
    slices: list[SliceStats | None] = []
    for band_start in range(first, end + pairs * width, width):
        band_profile = data[band_start:band_start + width].sum(axis=0, dtype=np.float64)
        fit = gauss_fit(profile_axis, band_profile)
        if fit is None:
            slices.append(None)
            continue
        cut = float(cut_axis[band_start + half])
        x, y = (fit.mean, cut) if vertical else (cut, fit.mean)
        slices.append(SliceStats(center_x=x, center_y=y, standard_deviation=fit.standard_deviation,
                                 intensity=float(band_profile.sum())))
    return SliceResult(amount=amount, length=abs(float(cut_axis[start]) - float(cut_axis[end])), slices=slices)


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float] | None:
    """Least-squares ``(slope, offset)`` of y against x; None with fewer than two distinct x."""
    if len(x) < 2:
        return None
    xs, ys = np.asarray(x), np.asarray(y)
    dx = xs - xs.mean()
    denominator = float(dx @ dx)
    if not denominator > 0:
        return None
    slope = float(dx @ (ys - ys.mean())) / denominator
    return slope, float(ys.mean() - slope * xs.mean())
