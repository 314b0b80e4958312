"""cam_server's slices: equal bands across the beam, each with its own centre and width.

Per band the centre and width are the centre of mass and RMS of the band's profile (one
vectorised pass over all bands), not a Gaussian fit per band as cam_server does: this keeps a
frame with many slices within the frame budget, and agrees with a fit on a Gaussian beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from camera.processing.config import Orientation


@dataclass(frozen=True, slots=True)
class SliceStats:
    """One band, in pixel coordinates: the band's middle on the cut axis, the fitted centre on the other."""

    center_x: float
    center_y: float
    standard_deviation: float | None
    intensity: float


@dataclass(frozen=True, slots=True)
class SliceResult:
    amount: int  # requested number after the odd adjustment; len(slices) may be smaller
    width: int  # pixels per band along the cut axis
    slices: list[SliceStats | None]


def slice_count(number_of_slices: int) -> int:
    """Odd, so that the middle band sits on the beam centre."""
    return number_of_slices + 1 if number_of_slices % 2 == 0 else number_of_slices


def slice_image(image: np.ndarray, x_coords: np.ndarray, y_coords: np.ndarray, center: float, sigma: float, *,
                number_of_slices: int, scale: float, orientation: Orientation) -> SliceResult:
    """Cut ``image`` into bands ``scale * sigma / n`` wide (at least 2 px) around ``center``.

    ``center`` and ``sigma`` are along the cut axis: y for ``vertical`` (bands of rows), x for
    ``horizontal`` (bands of columns). Bands are added in pairs outwards from the middle one
    while they fit inside the image, as cam_server does; those that do not fit are omitted.
    """
    amount = slice_count(number_of_slices)
    vertical = orientation == "vertical"
    data = image if vertical else image.T  # rows of ``data`` are cut into bands
    cut_coords, profile_coords = (y_coords, x_coords) if vertical else (x_coords, y_coords)
    length = data.shape[0]
    half = max(1, round(scale * sigma / amount / 2.0)) if math.isfinite(sigma) else 1
    width = 2 * half
    middle_start = math.floor(center - float(cut_coords[0]) - (width - 1) / 2.0 + 0.5) if length else 0
    if middle_start < 0 or middle_start + width > length:
        return SliceResult(amount=amount, width=width, slices=[])
    pairs = min((amount - 1) // 2, middle_start // width, (length - middle_start - width) // width)
    count = 2 * pairs + 1
    first = middle_start - pairs * width
    bands = data[first:first + count * width].reshape(count, width, data.shape[1]).sum(axis=1, dtype=np.float64)
    intensities = bands.sum(axis=1)
    relative = profile_coords - float(profile_coords[0])  # centred sums lose no precision
    with np.errstate(divide="ignore", invalid="ignore"):
        means = bands @ relative / intensities
        variances = bands @ (relative * relative) / intensities - means * means
    middles = cut_coords[first + np.arange(count) * width] + (width - 1) / 2.0
    slices: list[SliceStats | None] = []
    for middle, mean, variance, intensity in zip(middles.tolist(), means.tolist(), variances.tolist(),
                                                 intensities.tolist(), strict=True):
        if not intensity > 0:
            slices.append(None)
            continue
        center_profile = mean + float(profile_coords[0])
        sd = math.sqrt(variance) if variance >= 0 else None
        x, y = (center_profile, middle) if vertical else (middle, center_profile)
        slices.append(SliceStats(center_x=x, center_y=y, standard_deviation=sd, intensity=intensity))
    return SliceResult(amount=amount, width=width, slices=slices)


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
