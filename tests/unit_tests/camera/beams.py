"""Synthetic beams and cam_server's definitions in plain Python, shared by the pipeline tests
(see test_camera_pipeline.py for the beam and the tolerances)."""

from __future__ import annotations

import json
import math

import numpy as np

from camera.processing import ProcessingConfig

X0, Y0, SX, SY, AMPLITUDE, OFFSET = 120.3, 135.7, 12.0, 18.0, 1000.0, 10.0
HEIGHT, WIDTH = 256, 300
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def beam(*, x0: float = X0, y0: float = Y0, sx: float = SX, sy: float = SY, amplitude: float = AMPLITUDE,
         offset: float = OFFSET, shape: tuple[int, int] = (HEIGHT, WIDTH), shear_y: float = 0.0,
         shear_x: float = 0.0) -> np.ndarray:
    """Gaussian beam; ``shear_y`` tilts it so its centre moves in y by shear_y per pixel in x (and ``shear_x``
    the other way round)."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    dx = x - x0 - shear_x * (y - y0)
    dy = y - y0 - shear_y * (x - x0)
    return offset + amplitude * np.exp(-0.5 * ((dx / sx) ** 2 + (dy / sy) ** 2))


def config(**items: object) -> ProcessingConfig:
    return ProcessingConfig.from_dict(items)


def sampled_fwhm(center: float, sigma: float, step: float = 1.0) -> float:
    """cam_server's FWHM of a Gaussian sampled at integer pixels: from the last pixel at or below half
    height before the centre to the first after it."""
    half = FWHM_PER_SIGMA * sigma / 2
    return step * (math.ceil(center + half) - math.floor(center - half))


def cam_server_com_rms(result: dict, axis: str) -> tuple[float, float]:
    """The definition, in plain Python, applied to the reported axis, profile and fit."""
    offset, mean = result[f"{axis}_fit_offset"], result[f"{axis}_fit_mean"]
    sigma = result[f"{axis}_fit_standard_deviation"]
    points = list(zip(result[f"{axis}_axis"], result[f"{axis}_profile"], strict=True))
    total = sum(v - offset for _, v in points)
    p = [(a, 0.0 if abs(a - mean) > 5 * sigma else (v - offset) / total) for a, v in points]
    com = sum(a * w for a, w in p)
    return com, math.sqrt(abs(sum((a - com) ** 2 * w for a, w in p)))


def assert_json_ready(result: dict) -> None:
    """Only Python scalars, lists and dicts, and no NaN: json.dumps(allow_nan=False) accepts it."""
    def walk(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert value is None or type(value) in (int, float, str, bool), type(value)
    walk(result)
    json.dumps(result, allow_nan=False)
