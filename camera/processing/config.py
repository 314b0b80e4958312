"""Pipeline processing settings, named as in cam_server's pipeline configuration.

``ProcessingConfig.from_dict`` validates a client's JSON object and raises ValueError naming
the bad key, which the REST layer reports as HTTP 400. Everything is optional; an empty
object means "statistics of the raw frame".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from camera.processing import _checks as check

Orientation = Literal["vertical", "horizontal"]
ORIENTATIONS: tuple[Orientation, ...] = ("vertical", "horizontal")
MAX_SLICES = 100  # bounds the size of one result message


@dataclass(frozen=True, slots=True)
class RegionOfInterest:
    """Crop in cam_server's order ``[x_offset, width, y_offset, height]`` (pixels)."""

    x_offset: int
    width: int
    y_offset: int
    height: int

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether the region lies inside an image of ``shape`` (rows, columns, ...)."""
        return self.x_offset + self.width <= shape[1] and self.y_offset + self.height <= shape[0]

    def to_list(self) -> list[int]:
        return [self.x_offset, self.width, self.y_offset, self.height]


@dataclass(frozen=True, slots=True)
class GoodRegionConfig:
    """cam_server's good region: down to ``min + threshold * (max - min)``, widened by ``gfscale``."""

    threshold: float = 0.3
    gfscale: float = 1.8


@dataclass(frozen=True, slots=True)
class SlicesConfig:
    """``number_of_slices`` bands covering ``scale`` fitted sigmas around the beam centre.

    ``vertical`` cuts along y (bands of rows, each giving an x centre); ``horizontal`` cuts
    along x (bands of columns, each giving a y centre). An even number gets one more slice,
    so that the middle slice sits on the centre, as in cam_server.
    """

    number_of_slices: int = 1
    scale: float = 2.0
    orientation: Orientation = "vertical"


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    """What ``process()`` does to each frame, in order: background, threshold, ROI, statistics."""

    image_background_enable: bool = False
    image_threshold: float | None = None
    image_region_of_interest: RegionOfInterest | None = None
    image_good_region: GoodRegionConfig | None = None
    image_slices: SlicesConfig | None = None

    @classmethod
    def from_dict(cls, data: Any, *, image_shape: tuple[int, ...] | None = None) -> ProcessingConfig:
        """Parse a JSON object; with ``image_shape`` (rows, columns) the ROI must also fit the image."""
        data = check.mapping(data, "processing config")
        check.reject_unknown(data, _KEYS, "")
        enable = data.get("image_background_enable", False)
        threshold = data.get("image_threshold")
        roi = data.get("image_region_of_interest")
        good = data.get("image_good_region")
        slices = data.get("image_slices")
        return cls(
            image_background_enable=check.boolean(enable, "image_background_enable"),
            image_threshold=None if threshold is None else check.number(threshold, "image_threshold"),
            image_region_of_interest=None if roi is None else _roi(roi, image_shape),
            image_good_region=None if good is None else _good_region(good),
            image_slices=None if slices is None else _slices(slices),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form accepted by ``from_dict`` (every key present, disabled ones null)."""
        good, slices, roi = self.image_good_region, self.image_slices, self.image_region_of_interest
        return {
            "image_background_enable": self.image_background_enable,
            "image_threshold": self.image_threshold,
            "image_region_of_interest": None if roi is None else roi.to_list(),
            "image_good_region": None if good is None else {"threshold": good.threshold, "gfscale": good.gfscale},
            "image_slices": None if slices is None else {
                "number_of_slices": slices.number_of_slices, "scale": slices.scale,
                "orientation": slices.orientation},
        }


_KEYS = ("image_background_enable", "image_threshold", "image_region_of_interest", "image_good_region",
         "image_slices")


def _roi(value: Any, image_shape: tuple[int, ...] | None) -> RegionOfInterest:
    key = "image_region_of_interest"
    x_offset, width, y_offset, height = check.sequence(value, key, 4)
    roi = RegionOfInterest(
        x_offset=check.integer(x_offset, f"{key}[0] (x_offset)", minimum=0),
        width=check.integer(width, f"{key}[1] (width)", minimum=1),
        y_offset=check.integer(y_offset, f"{key}[2] (y_offset)", minimum=0),
        height=check.integer(height, f"{key}[3] (height)", minimum=1),
    )
    if image_shape is not None and not roi.fits(image_shape):
        raise ValueError(f"{key}: {roi.to_list()} lies outside the {image_shape[1]}x{image_shape[0]} image")
    return roi


def _good_region(value: Any) -> GoodRegionConfig:
    key = "image_good_region"
    data: Mapping[str, Any] = check.mapping(value, key)
    check.reject_unknown(data, ("threshold", "gfscale"), key)
    default = GoodRegionConfig()
    return GoodRegionConfig(
        threshold=check.number(data.get("threshold", default.threshold), f"{key}.threshold", minimum=0, maximum=1),
        gfscale=check.number(data.get("gfscale", default.gfscale), f"{key}.gfscale", positive=True),
    )


def _slices(value: Any) -> SlicesConfig:
    key = "image_slices"
    data: Mapping[str, Any] = check.mapping(value, key)
    check.reject_unknown(data, ("number_of_slices", "scale", "orientation"), key)
    default = SlicesConfig()
    orientation = data.get("orientation", default.orientation)
    if orientation not in ORIENTATIONS:
        raise ValueError(f"{key}.orientation: expected one of {', '.join(ORIENTATIONS)}, got {orientation!r}")
    return SlicesConfig(
        number_of_slices=check.integer(data.get("number_of_slices", default.number_of_slices),
                                       f"{key}.number_of_slices", minimum=1, maximum=MAX_SLICES),
        scale=check.number(data.get("scale", default.scale), f"{key}.scale", positive=True),
        orientation=orientation,
    )
