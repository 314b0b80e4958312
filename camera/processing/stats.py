"""Statistics of 1-D profiles, as cam_server defines the fields they feed.

cam_server's centre of mass and RMS are taken above the fitted Gaussian's offset and within
5 fitted sigmas of its mean; its FWHM and good region are found by stepping out from the
profile's maximum to the first sample at or below a level. Each function returns None (or an
empty region) rather than raising when the profile has no signal, so a dark or flat frame
still yields a result message. See docs/camera-processing.md for every field.
"""

from __future__ import annotations

import math

import numpy as np

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...
COM_WINDOW_SIGMAS = 5.0  # cam_server ignores the profile farther than this from the fitted mean


def profiles(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x_profile, y_profile): column sums (length = width) and row sums (length = height), float64."""
    return image.sum(axis=0, dtype=np.float64), image.sum(axis=1, dtype=np.float64)


def center_of_mass_rms(axis: np.ndarray, profile: np.ndarray) -> tuple[float | None, float | None]:
    """Plain weighted mean and RMS width of ``axis`` over the whole profile, pedestal included.

    What ``*_center_of_mass_raw`` reports and what the Gaussian fit starts from; None without
    positive total weight, and an RMS of None when negative samples make the variance negative.
    """
    total = float(profile.sum())
    if not total > 0 or not math.isfinite(total):
        return None, None
    center = float(np.dot(axis, profile)) / total
    deviation = axis - center
    variance = float(np.dot(deviation * deviation, profile)) / total
    return center, (math.sqrt(variance) if variance >= 0 else None)


def gauss_center_of_mass_rms(axis: np.ndarray, profile: np.ndarray, offset: float, mean: float,
                             sigma: float) -> tuple[float | None, float | None]:
    """cam_server's ``*_center_of_mass`` and ``*_rms``, given the profile's Gaussian fit.

    ``p = (profile - offset) / sum(profile - offset)``, then ``p = 0`` wherever
    ``|axis - mean| > 5 sigma``, *without* normalising again (so ``sum(p)`` may be below 1);
    ``com = sum(axis * p)``, ``rms = sqrt(|sum((axis - com)**2 * p)|)``. Because ``p`` is not
    renormalised, both depend on where the axis' zero is: compute them on the reported axis.
    None when the offset leaves no signal to normalise by.
    """
    weights = profile - offset
    total = float(weights.sum())
    if total == 0 or not math.isfinite(total) or not math.isfinite(mean) or not math.isfinite(sigma):
        return None, None
    p = np.where(np.abs(axis - mean) > COM_WINDOW_SIGMAS * sigma, 0.0, weights / total)
    center = float(np.dot(axis, p))
    deviation = axis - center
    rms = math.sqrt(abs(float(np.dot(deviation * deviation, p))))
    return (center, rms) if math.isfinite(center) and math.isfinite(rms) else (None, None)


def fwhm(axis: np.ndarray, profile: np.ndarray) -> float | None:
    """cam_server's ``*_fwhm``: the axis distance between the samples that bound the peak at half height.

    From the maximum, the nearest sample on each side at or below ``min + (max - min) / 2``;
    where a side has none, that end of the profile. Not interpolated, so on a sampled peak
    it reads up to one sample wider than the true width. None without a peak (flat profile).
    """
    if profile.size < 2 or not np.isfinite(profile).all():
        return None
    low, peak = float(profile.min()), int(profile.argmax())
    half = (float(profile[peak]) - low) * 0.5
    if not half > 0:
        return None
    at_or_below = profile - low <= half
    left = np.flatnonzero(at_or_below[:peak])
    right = np.flatnonzero(at_or_below[peak + 1:])
    start = int(left[-1]) if left.size else 0
    end = int(right[0]) + peak + 1 if right.size else profile.size - 1
    return abs(float(axis[end]) - float(axis[start]))


def interpolated_fwhm(profile: np.ndarray) -> float | None:
    """Full width at half maximum above the minimum, in samples, linearly interpolated.

    Only the Gaussian fit's starting width (it is closer to the truth than ``fwhm``); None when
    there is no peak or it reaches an end of the profile.
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
    """cam_server's good region of a profile as ``[start, end)`` sample indices; may be empty.

    The level is ``min + threshold * (max - min)``. Stepping out from the maximum, ``start`` is
    the first sample below the level on the left (index 0 is never looked at) and ``end`` the
    first below it on the right; a side with none stays at the maximum. The width
    ``end - start`` is then scaled by ``gfscale`` about its middle, ``start`` clipped at 0 and
    ``end`` at the last index (so the last sample is never in the region), and both truncated
    to integers. A flat profile gives an empty region, as in cam_server.
    """
    size = profile.size
    if size == 0:
        return 0, 0
    low, peak = float(profile.min()), int(profile.argmax())
    level = (float(profile[peak]) - low) * threshold + low
    below = profile < level
    left = np.flatnonzero(below[1:peak + 1])
    right = np.flatnonzero(below[peak:])
    start = float(left[-1] + 1) if left.size else float(peak)
    end = float(right[0] + peak) if right.size else float(peak)
    extend = (end - start) * gfscale - (end - start)
    start, end = max(start - extend / 2.0, 0.0), min(end + extend / 2.0, float(size - 1))
    return int(start), max(int(end), int(start))
