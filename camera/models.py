"""Cameras, processing pipelines and backgrounds, configured in the admin and the REST API."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import models

from .processing import CameraConfig, ProcessingConfig


class Camera(models.Model):
    """A camera viewers can name (``{"camera": name}``) instead of listing its PVs."""

    class Source(models.TextChoices):
        AREA_DETECTOR = "area_detector", "Area Detector (EPICS)"
        SIMULATION = "simulation", "Simulation (a moving beam, no IOC)"

    name = models.SlugField(max_length=100, unique=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.AREA_DETECTOR)
    array_pv = models.CharField("array PV", max_length=255, blank=True, help_text="e.g. 13SIM1:image1:ArrayData")
    pvs = models.JSONField("PVs", default=dict, blank=True, help_text=(
        "PVs overriding the derived ones, by ophyd-websocket's field names (startX, sizeX, colorMode, ...)"))
    sim_width = models.PositiveIntegerField(default=640)
    sim_height = models.PositiveIntegerField(default=480)
    sim_rate_hz = models.FloatField(default=10.0)
    transform = models.JSONField(default=dict, blank=True, help_text=(
        "mirror_x, mirror_y, rotate (quarter turns counter-clockwise: 1 = 90°), binning_x/_y, binning_mean, "
        "camera_calibration"))
    description = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def camera_config(self) -> CameraConfig:
        return CameraConfig.from_dict(self.transform or {})

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.source == self.Source.AREA_DETECTOR and not self.array_pv:
            errors["array_pv"] = "An Area Detector camera needs its image array PV"
        try:
            self.camera_config()
        except ValueError as exc:
            errors["transform"] = str(exc)
        if not isinstance(self.pvs, dict) or not all(isinstance(v, str) for v in self.pvs.values()):
            errors["pvs"] = "A JSON object of field name → PV name"
        if not 1 <= self.sim_width <= 4096 or not 1 <= self.sim_height <= 4096:
            errors["sim_width"] = "Simulation frames are 1 to 4096 pixels a side"
        if not 0.1 <= self.sim_rate_hz <= 100:
            errors["sim_rate_hz"] = "Simulation rate: 0.1 to 100 frames a second"
        if errors:
            raise ValidationError(errors)

    def as_config(self) -> dict[str, Any]:
        """The REST API's camera configuration."""
        return {"name": self.name, "source": self.source, "array_pv": self.array_pv, "pvs": self.pvs,
                "sim_width": self.sim_width, "sim_height": self.sim_height, "sim_rate_hz": self.sim_rate_hz,
                "transform": self.transform, "description": self.description,
                "updated": self.updated.isoformat() if self.updated else None}


class Pipeline(models.Model):
    """A processing configuration for one camera (cam_server's "processing" pipeline)."""

    name = models.SlugField(max_length=100, unique=True)
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="pipelines")
    config = models.JSONField(default=dict, blank=True, help_text=(
        "image_background_enable, image_threshold, image_region_of_interest [x, width, y, height], "
        "image_good_region {threshold, gfscale}, image_slices {number_of_slices, scale, orientation}"))
    background_id = models.CharField("background ID", max_length=150, blank=True, help_text=(
        "The background to subtract (with image_background_enable); empty: the camera's latest"))
    description = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def processing_config(self) -> ProcessingConfig:
        return ProcessingConfig.from_dict(self.config or {})

    def clean(self) -> None:
        try:
            self.processing_config()
        except ValueError as exc:
            raise ValidationError({"config": str(exc)}) from exc


class Background(models.Model):
    """An averaged dark image, kept for good: pipelines name it by id (cam_server keeps them too)."""

    background_id = models.CharField("background ID", max_length=150, unique=True)
    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="backgrounds")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    n_images = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    data = models.BinaryField(help_text="The image as a NumPy .npy file (float32)")

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.background_id

    def array(self) -> np.ndarray:
        return np.load(io.BytesIO(bytes(self.data)), allow_pickle=False)

    @staticmethod
    def pack(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(image, dtype=np.float32), allow_pickle=False)
        return buffer.getvalue()
