"""Statistics of 1-D profiles in pixel coordinates: moments, FWHM and cam_server's good region.

Each returns None rather than raising when the profile has no signal, so a dark or flat
frame still yields a result message.
"""

from __future__ import annotations

import math

import numpy as np

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...


def profiles(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x_profile, y_profile): column sums (length = width) and row sums (length = height), float64."""
    return image.sum(axis=0, dtype=np.float64), image.sum(axis=1, dtype=np.float64)


def center_of_mass_rms(coords: np.ndarray, profile: np.ndarray) -> tuple[float | None, float | None]:
    """Weighted mean and RMS width of ``coords``; None without positive total weight.

    The RMS is None when negative pixels (signed images) make the variance negative.
    """
    total = float(profile.sum())
    if not total > 0 or not math.isfinite(total):
        return None, None
    center = float(np.dot(coords, profile)) / total
    deviation = coords - center
    variance = float(np.dot(deviation * deviation, profile)) / total
    return center, (math.sqrt(variance) if variance >= 0 else None)


def fwhm(profile: np.ndarray) -> float | None:
    """Full width at half maximum above the profile's minimum, in samples, linearly interpolated.

    The width of the contiguous part around the maximum that lies above the half level;
    None when there is no peak or it reaches an end of the profile (width unknown).
    """
    if profile.size < 3:
        return None
    low, peak_index = float(profile.min()), int(profile.argmax())
    high = float(profile[peak_index])
    if not high > low:
        return None
    half = low + (high - low) / 2.0
    left = np.flatnonzero(profile[:peak_index] < half)
    right = np.flatnonzero(profile[peak_index + 1:] < half)
    if left.size == 0 or right.size == 0:
        return None
    i = int(left[-1])  # profile[i] < half <= profile[i + 1]
    j = int(right[0]) + peak_index + 1  # profile[j - 1] >= half > profile[j]
    x_left = i + (half - profile[i]) / (profile[i + 1] - profile[i])
    x_right = j - 1 + (profile[j - 1] - half) / (profile[j - 1] - profile[j])
    return float(x_right - x_left)


def good_region(profile: np.ndarray, threshold: float, gfscale: float) -> tuple[int, int]:
    """cam_server's good region of a profile as ``[start, end)`` sample indices.

    The contiguous run around the maximum where the profile is at least
    ``min + threshold * (max - min)``, then widened by the factor ``gfscale`` about its middle
    (1.8 adds 40 % of its width on each side), clipped to the profile. A flat profile is all good.
    """
    size = profile.size
    if size == 0:
        return 0, 0
    low, peak_index = float(profile.min()), int(profile.argmax())
    level = low + (float(profile[peak_index]) - low) * threshold
    below_left = np.flatnonzero(profile[:peak_index] < level)
    below_right = np.flatnonzero(profile[peak_index + 1:] < level)
    start = int(below_left[-1]) + 1 if below_left.size else 0
    end = int(below_right[0]) + peak_index + 1 if below_right.size else size
    extend = (end - start) * (gfscale - 1.0) / 2.0
    start, end = math.floor(start - extend), math.ceil(end + extend)
    start, end = max(0, start), min(size, end)
    if end <= start:  # gfscale < 1 shrank it to nothing: keep the peak sample
        start, end = peak_index, peak_index + 1
    return start, end
