"""A viewer's processing request, as the shared per-frame analysis the feed runs.

``{"processing": "<pipeline>"}`` names a stored pipeline (its config, and its background:
the one it names or its camera's latest); ``{"processing": {...}}`` is an inline config.
Viewers asking for the same thing share one run per frame (equal keys).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from channels.db import database_sync_to_async

from .processing import AxisCalibration, ProcessingConfig, process


class PipelineAnalysis:
    """Runs ``process`` on each decoded frame; equal when asking for the same thing."""

    def __init__(self, key: tuple[Any, ...], config: ProcessingConfig, background: np.ndarray | None = None,
                 calibration: AxisCalibration | None = None, name: str | None = None) -> None:
        self.key, self.config, self.background, self.calibration, self.name = key, config, background, \
            calibration, name

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelineAnalysis) and other.key == self.key

    def run(self, image: np.ndarray) -> dict[str, Any]:
        results = process(image, self.config, self.background, calibration=self.calibration)
        if self.name is not None:
            results["pipeline"] = self.name
        return results


def _stored(name: str) -> PipelineAnalysis:
    from .models import Background, Pipeline

    row = Pipeline.objects.select_related("camera").filter(name=name).first()
    if row is None:
        raise ValueError(f"No pipeline {name!r}; GET /api/v1/pipelines lists them")
    config = row.processing_config()
    background, background_id = None, ""
    if config.image_background_enable:
        rows = Background.objects.filter(camera=row.camera)
        stored = rows.filter(background_id=row.background_id).first() if row.background_id else \
            rows.order_by("-created").first()
        if stored is None:
            raise ValueError(f"Pipeline {name!r} subtracts a background, but camera {row.camera.name!r} has "
                             f"{'no background ' + repr(row.background_id) if row.background_id else 'none yet'}")
        background, background_id = stored.array(), stored.background_id
    calibration = row.camera.camera_config().axis_calibration()
    return PipelineAnalysis(("pipeline", name, row.updated.timestamp(), background_id), config, background,
                            calibration, name)


async def analysis_for(request: Any) -> PipelineAnalysis | None:
    """The analysis a ``processing`` field asks for (None: none); ValueError explains a bad one."""
    if request is None or request is False:
        return None
    if isinstance(request, str):
        return await database_sync_to_async(_stored)(request)
    if request is True:
        request = {}
    if isinstance(request, dict):
        config = ProcessingConfig.from_dict(request)
        if config.image_background_enable:
            raise ValueError("image_background_enable needs a stored pipeline (it names the background)")
        return PipelineAnalysis(("inline", json.dumps(config.to_dict(), sort_keys=True)), config)
    raise ValueError("'processing' is a pipeline name, a processing config object, true or false")
