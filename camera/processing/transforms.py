"""Pixel-wise and geometric image transforms: pure functions, vectorised, no wrap-around.

Geometric ones return views where numpy can (mirror, rotate, region of interest), so the
pipeline copies a frame once, when it converts it to floating point.
"""

from __future__ import annotations

import numpy as np

from .config import RegionOfInterest


def working_dtype(dtype: np.dtype) -> type[np.floating]:
    """float32 keeps up to 16-bit integers exact and halves memory traffic; wider inputs need float64."""
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return np.float32
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        return np.float32
    return np.float64


def check_numeric(image: np.ndarray) -> None:
    """Refuse images that statistics make no sense on (bool, complex, strings, objects)."""
    if image.dtype.kind not in "iuf":
        raise ValueError(f"image: expected a real numeric dtype, got {image.dtype}")


def to_mono(image: np.ndarray) -> np.ndarray:
    """A 2-D image; H x W x 3 (or x 4, alpha ignored) becomes the sum of its R, G and B channels.

    The plain sum, not luminance weights: for beam position and size only the relative
    intensity matters, and the sum of integer channels stays exact.
    """
    check_numeric(image)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4):
        wide = np.int64 if image.dtype.kind in "iu" else image.dtype
        return image[:, :, :3].sum(axis=2, dtype=wide)
    raise ValueError(f"image: expected a 2-D (mono) or H x W x 3 (RGB) array, got shape {image.shape}")


def subtract_background(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``image - background`` in floating point, clamped at 0 (unsigned inputs never wrap)."""
    if image.shape != background.shape:
        raise ValueError(f"background: shape {background.shape} does not match the image shape {image.shape}")
    result = image.astype(working_dtype(image.dtype), copy=True)
    np.subtract(result, background, out=result, casting="unsafe")
    np.maximum(result, 0, out=result)
    return result


def apply_threshold(image: np.ndarray, threshold: float) -> np.ndarray:
    """A copy with every pixel below ``threshold`` set to 0 (cam_server's image_threshold)."""
    result = image.copy()
    np.copyto(result, 0, where=result < threshold)
    return result


def region_of_interest(image: np.ndarray, roi: RegionOfInterest) -> np.ndarray:
    """The ``[x_offset, width, y_offset, height]`` crop as a view; the region must fit the image."""
    if not roi.fits(image.shape):
        raise ValueError(f"image_region_of_interest: {roi.to_list()} lies outside the "
                         f"{image.shape[1]}x{image.shape[0]} image")
    return image[roi.y_offset:roi.y_offset + roi.height, roi.x_offset:roi.x_offset + roi.width]


def bin_image(image: np.ndarray, binning_x: int, binning_y: int, *, mean: bool = False) -> np.ndarray:
    """Sum (default, as cam_server) or average ``binning_x`` x ``binning_y`` pixel blocks.

    Summing keeps the intensity and profiles' totals; integer sums are int64 so they cannot
    overflow. Rows and columns that do not fill a whole block are dropped.
    """
    if binning_x < 1 or binning_y < 1:
        raise ValueError(f"binning: factors must be >= 1, got {binning_x} x {binning_y}")
    if binning_x == 1 and binning_y == 1:
        return image
    rows, cols = image.shape[0] // binning_y, image.shape[1] // binning_x
    if rows == 0 or cols == 0:
        raise ValueError(f"binning: {binning_x} x {binning_y} is larger than the {image.shape[1]}x"
                         f"{image.shape[0]} image")
    blocks = image[:rows * binning_y, :cols * binning_x].reshape(
        rows, binning_y, cols, binning_x, *image.shape[2:])
    if mean:
        return blocks.mean(axis=(1, 3), dtype=np.float64)
    wide = np.int64 if image.dtype.kind in "iu" else image.dtype
    return blocks.sum(axis=(1, 3), dtype=wide)


def mirror(image: np.ndarray, *, mirror_x: bool = False, mirror_y: bool = False) -> np.ndarray:
    """``mirror_x`` flips left-right (x runs the other way), ``mirror_y`` flips top-bottom."""
    if mirror_x:
        image = image[:, ::-1]
    if mirror_y:
        image = image[::-1]
    return image


def rotate(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    """Rotate by ``quarter_turns`` x 90 degrees as ``numpy.rot90`` does (counter-clockwise on screen,
    row 0 at the top), as cam_server's ``rotate``; negative turns go clockwise."""
    return np.rot90(image, quarter_turns % 4)
