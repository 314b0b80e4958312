"""Gaussian fit of a profile: ``offset + amplitude * exp(-(x - mean)**2 / (2 * sigma**2))``.

Started from the profile's moments (and FWHM when it has one), bounded, and never raising:
when the least-squares fit fails or the profile is too short, the moments are returned with
``method == "moments"``, so a reader can tell a fit from an estimate. Works on any evenly
spaced axis, ascending or descending, in pixels or calibrated units (slices are fitted on
cam_server's calibrated axes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .stats import FWHM_PER_SIGMA, center_of_mass_rms, interpolated_fwhm

MAX_EVALUATIONS = 100  # bounds the time of a fit that does not converge
MIN_SIGMA = 0.05  # samples: narrower is not resolvable and makes the model a delta


@dataclass(frozen=True, slots=True)
class GaussFit:
    """Fitted parameters in the coordinates the profile was given in."""

    offset: float
    amplitude: float
    mean: float
    standard_deviation: float
    method: Literal["gauss", "moments"]

    def function(self, coords: np.ndarray) -> np.ndarray:
        """The fitted curve sampled at ``coords`` (cam_server's ``*_fit_gauss_function``)."""
        return gauss(coords, self.offset, self.amplitude, self.mean, self.standard_deviation)

    def on_axis(self, offset: float, scale: float) -> GaussFit:
        """The same fit on the axis ``offset + scale * coords`` (e.g. pixels to calibrated units)."""
        return GaussFit(offset=self.offset, amplitude=self.amplitude, mean=offset + scale * self.mean,
                        standard_deviation=abs(scale) * self.standard_deviation, method=self.method)


def gauss(coords: np.ndarray, offset: float, amplitude: float, mean: float, sigma: float) -> np.ndarray:
    """The model, for fits and for drawing them."""
    return offset + amplitude * np.exp(-0.5 * ((coords - mean) / sigma) ** 2)


def gauss_fit(coords: np.ndarray, profile: np.ndarray) -> GaussFit | None:
    """Fit ``profile`` sampled at the evenly spaced ``coords``; None when it has no peak at all."""
    if profile.size == 0 or not np.isfinite(profile).all():
        return None
    low, high = float(profile.min()), float(profile.max())
    if not high > low:
        return None
    signal = profile - low
    center, rms = center_of_mass_rms(coords, signal)
    if center is None:
        return None
    step = abs(float(coords[1] - coords[0])) if coords.size > 1 else 1.0
    step = step if step > 0 else 1.0
    width = interpolated_fwhm(signal)
    sigma = width * step / FWHM_PER_SIGMA if width is not None else (rms or step)
    estimate = GaussFit(offset=low, amplitude=high - low, mean=center,
                        standard_deviation=max(sigma, MIN_SIGMA * step), method="moments")
    if profile.size < 5:  # fewer samples than parameters plus one: nothing to fit
        return estimate
    return _least_squares(coords, signal / (high - low), estimate, low, high - low, step) or estimate


def _least_squares(coords: np.ndarray, y: np.ndarray, start: GaussFit, low: float, span: float,
                   step: float) -> GaussFit | None:
    """Fit the profile normalised to [0, 1] (well conditioned whatever the pixel values)."""
    # Imported on the first fit, not with the module: scipy.optimize costs ~0.25 s at every
    # server start, and most servers never fit a Gaussian.
    from scipy.optimize import least_squares

    first, last = float(coords[0]), float(coords[-1])
    length = abs(last - first) + step
    lower = np.array([-1.0, 0.0, min(first, last), MIN_SIGMA * step])
    upper = np.array([1.0, 4.0, max(first, last), 10.0 * length])
    x0 = np.clip([0.0, 1.0, start.mean, start.standard_deviation], lower, upper)
    x0 = np.minimum(np.maximum(x0, lower + 1e-9 * (upper - lower)), upper - 1e-9 * (upper - lower))

    def residuals(p: np.ndarray) -> np.ndarray:
        return p[0] + p[1] * np.exp(-0.5 * ((coords - p[2]) / p[3]) ** 2) - y

    def jacobian(p: np.ndarray) -> np.ndarray:
        d = (coords - p[2]) / p[3]
        e = np.exp(-0.5 * d * d)
        ae = p[1] * e
        return np.column_stack((np.ones_like(coords), e, ae * d / p[3], ae * d * d / p[3]))

    try:
        # Unbounded Levenberg-Marquardt (MINPACK) is ~3x faster than the bounded trust-region
        # method; its answer is kept when it lands inside the bounds, which it does for a beam.
        result = least_squares(residuals, x0, jac=jacobian, method="lm", x_scale="jac", max_nfev=MAX_EVALUATIONS)
        params = np.array(result.x, dtype=np.float64)
        params[3] = abs(params[3])  # the model is even in sigma
        if result.status <= 0 or not _inside(params, lower, upper):
            result = least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf",
                                   x_scale="jac", max_nfev=MAX_EVALUATIONS)
            params = np.array(result.x, dtype=np.float64)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return None
    if result.status <= 0 or not _inside(params, lower, upper):
        return None
    offset, amplitude, mean, sigma = (float(v) for v in params)
    if amplitude <= 0:
        return None
    return GaussFit(offset=low + offset * span, amplitude=amplitude * span, mean=mean, standard_deviation=sigma,
                    method="gauss")


def _inside(p: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> bool:
    return bool(np.isfinite(p).all() and (p >= lower).all() and (p <= upper).all())
