"""The image-geometry part of a camera's configuration (cam_server's camera side).

Applied to every raw frame before anything else sees it (display, background collection,
processing), in cam_server's order: binning, mirror_x, mirror_y, rotate. The calibration
turns pixel indices of the transformed frame into engineering units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from camera.processing import _checks as check

from .transforms import bin_image, mirror, rotate

MAX_BINNING = 64


@dataclass(frozen=True, slots=True)
class AxisCalibration:
    """Linear pixel -> unit map per axis: ``unit = offset + scale * pixel`` (default: pixels)."""

    x_offset: float = 0.0
    x_scale: float = 1.0
    y_offset: float = 0.0
    y_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class CameraCalibration:
    """cam_server's ``camera_calibration``: two reference markers a known distance apart.

    ``reference_marker`` is ``[upper_left_x, upper_left_y, lower_right_x, lower_right_y]`` in
    pixels; the origin is the middle between them and the axes point left and up, seen at the
    given angles, as cam_server computes them.
    """

    reference_marker: tuple[int, int, int, int] = (0, 0, 100, 100)
    reference_marker_width: float = 100.0
    reference_marker_height: float = 100.0
    angle_horizontal: float = 0.0
    angle_vertical: float = 0.0

    def axis_calibration(self) -> AxisCalibration:
        left, top, right, bottom = self.reference_marker
        size_x = self.reference_marker_width / (right - left) * math.cos(math.radians(self.angle_horizontal))
        size_y = self.reference_marker_height / (bottom - top) * math.cos(math.radians(self.angle_vertical))
        origin_x, origin_y = int((right - left) / 2 + left), int((bottom - top) / 2 + top)
        return AxisCalibration(x_offset=origin_x * size_x, x_scale=-size_x, y_offset=origin_y * size_y,
                               y_scale=-size_y)

    def to_dict(self) -> dict[str, Any]:
        return {"reference_marker": list(self.reference_marker), "reference_marker_width": self.reference_marker_width,
                "reference_marker_height": self.reference_marker_height, "angle_horizontal": self.angle_horizontal,
                "angle_vertical": self.angle_vertical}


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """Binning, mirroring, rotation and calibration of one camera's frames."""

    mirror_x: bool = False
    mirror_y: bool = False
    rotate: int = 0
    binning_x: int = 1
    binning_y: int = 1
    binning_mean: bool = False
    camera_calibration: CameraCalibration | None = None

    @classmethod
    def from_dict(cls, data: Any) -> CameraConfig:
        """Parse the JSON object; unknown keys and bad values raise ValueError naming the key."""
        data = check.mapping(data, "camera config")
        check.reject_unknown(data, _KEYS, "")
        calibration = data.get("camera_calibration")
        return cls(
            mirror_x=check.boolean(data.get("mirror_x", False), "mirror_x"),
            mirror_y=check.boolean(data.get("mirror_y", False), "mirror_y"),
            rotate=check.integer(data.get("rotate", 0), "rotate"),
            binning_x=check.integer(data.get("binning_x", 1), "binning_x", minimum=1, maximum=MAX_BINNING),
            binning_y=check.integer(data.get("binning_y", 1), "binning_y", minimum=1, maximum=MAX_BINNING),
            binning_mean=check.boolean(data.get("binning_mean", False), "binning_mean"),
            camera_calibration=None if calibration is None else _calibration(calibration),
        )

    def to_dict(self) -> dict[str, Any]:
        calibration = self.camera_calibration
        return {"mirror_x": self.mirror_x, "mirror_y": self.mirror_y, "rotate": self.rotate,
                "binning_x": self.binning_x, "binning_y": self.binning_y, "binning_mean": self.binning_mean,
                "camera_calibration": None if calibration is None else calibration.to_dict()}

    def axis_calibration(self) -> AxisCalibration | None:
        """What ``process(..., calibration=)`` takes; None means axes in pixels."""
        return None if self.camera_calibration is None else self.camera_calibration.axis_calibration()


_KEYS = ("mirror_x", "mirror_y", "rotate", "binning_x", "binning_y", "binning_mean", "camera_calibration")


def camera_transform(image: np.ndarray, camera: CameraConfig) -> np.ndarray:
    """The frame as the camera's users see it: binned, mirrored, then rotated (a view when unbinned)."""
    image = bin_image(image, camera.binning_x, camera.binning_y, mean=camera.binning_mean)
    image = mirror(image, mirror_x=camera.mirror_x, mirror_y=camera.mirror_y)
    return rotate(image, camera.rotate)


def _calibration(value: Any) -> CameraCalibration:
    key = "camera_calibration"
    data: Mapping[str, Any] = check.mapping(value, key)
    check.reject_unknown(data, ("reference_marker", "reference_marker_width", "reference_marker_height",
                                "angle_horizontal", "angle_vertical"), key)
    default = CameraCalibration()
    markers = check.sequence(data.get("reference_marker", list(default.reference_marker)),
                             f"{key}.reference_marker", 4)
    left, top, right, bottom = (check.integer(v, f"{key}.reference_marker[{i}]") for i, v in enumerate(markers))
    if right == left or bottom == top:
        raise ValueError(f"{key}.reference_marker: the two markers must differ in x and in y, got {markers}")
    angles = {name: check.number(data.get(name, getattr(default, name)), f"{key}.{name}", minimum=-89.0, maximum=89.0)
              for name in ("angle_horizontal", "angle_vertical")}
    return CameraCalibration(
        reference_marker=(left, top, right, bottom),
        reference_marker_width=check.number(data.get("reference_marker_width", default.reference_marker_width),
                                            f"{key}.reference_marker_width", positive=True),
        reference_marker_height=check.number(data.get("reference_marker_height", default.reference_marker_height),
                                             f"{key}.reference_marker_height", positive=True),
        **angles,
    )
