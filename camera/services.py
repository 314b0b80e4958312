"""What the camera REST API does, without HTTP: each call returns (status, JSON body) or data.

Configuration goes through the models' validation (the admin's too), so a config the API
accepts is one the admin accepts and the pipeline can run. Live calls (geometry, one image,
background collection) join the camera's shared feed like a viewer and leave.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from PIL import Image

from .cameras import builtin_camera, camera_named, grab
from .encode import to_8bit
from .models import Background, Camera, Pipeline
from .processing import collect_background

Result = tuple[int, dict[str, Any]]
CAMERA_FIELDS = ("source", "array_pv", "pvs", "sim_width", "sim_height", "sim_rate_hz", "transform", "description")
PIPELINE_FIELDS = ("camera", "config", "background_id", "description")
BUILTIN = ["sim"]


def error(status: int, message: str, code: str, **extra: Any) -> Result:
    return status, {"error": message, "code": code, **extra}


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


# --- configuration (blocking: call with sync_to_async) ------------------------------------------

def camera_list() -> Result:
    names = list(Camera.objects.values_list("name", flat=True))
    return 200, {"cameras": names + [n for n in BUILTIN if n not in names]}


def camera_config(name: str) -> Result:
    row = Camera.objects.filter(name=name).first()
    if row is not None:
        return 200, {"config": row.as_config()}
    if builtin_camera(name) is not None:
        spec = builtin_camera(name)
        return 200, {"config": {"name": name, "source": "simulation", "builtin": True, "sim_width": spec.width,
                                "sim_height": spec.height, "sim_rate_hz": spec.rate_hz}}
    return error(404, f"No camera {name!r}; GET /api/v1/cameras lists them", "unknown_camera")


def camera_config_set(name: str, data: dict[str, Any]) -> Result:
    if builtin_camera(name) is not None:
        return error(400, f"{name!r} is a built-in simulation camera; choose another name", "builtin_camera")
    unknown = sorted(set(data) - set(CAMERA_FIELDS) - {"name"})
    if unknown:
        return error(400, f"Unknown camera field(s): {', '.join(unknown)}; known: {', '.join(CAMERA_FIELDS)}",
                     "bad_field")
    row = Camera.objects.filter(name=name).first() or Camera(name=name)
    for field in CAMERA_FIELDS:
        if field in data:
            setattr(row, field, data[field])
    try:
        row.full_clean()
    except ValidationError as exc:
        return error(400, f"Invalid camera configuration: {_messages(exc)}", "invalid_config")
    row.save()
    return 200, {"config": row.as_config()}


def camera_delete(name: str) -> Result:
    row = Camera.objects.filter(name=name).first()
    if row is None:
        return error(404, f"No camera {name!r}", "unknown_camera")
    if row.backgrounds.exists():
        return error(409, f"Camera {name!r} has stored backgrounds, which pipelines may name; they are kept, so "
                     "the camera is too", "has_backgrounds")
    row.delete()
    return 200, {"deleted": name}


def pipeline_list() -> Result:
    return 200, {"pipelines": list(Pipeline.objects.values_list("name", flat=True))}


def pipeline_config(name: str) -> Result:
    row = Pipeline.objects.select_related("camera").filter(name=name).first()
    if row is None:
        return error(404, f"No pipeline {name!r}; GET /api/v1/pipelines lists them", "unknown_pipeline")
    return 200, {"config": {"name": row.name, "camera": row.camera.name, "config": row.config,
                            "background_id": row.background_id, "description": row.description}}


def pipeline_config_set(name: str, data: dict[str, Any]) -> Result:
    unknown = sorted(set(data) - set(PIPELINE_FIELDS) - {"name"})
    if unknown:
        return error(400, f"Unknown pipeline field(s): {', '.join(unknown)}; known: {', '.join(PIPELINE_FIELDS)}",
                     "bad_field")
    row = Pipeline.objects.filter(name=name).first() or Pipeline(name=name)
    if "camera" in data or row.pk is None:
        camera = Camera.objects.filter(name=data.get("camera")).first() if isinstance(data.get("camera"), str) \
            else None
        if camera is None:
            return error(400, "A pipeline needs 'camera': the name of a configured camera", "bad_field")
        row.camera = camera
    for field in ("config", "background_id", "description"):
        if field in data:
            setattr(row, field, data[field])
    try:
        row.full_clean()
    except ValidationError as exc:
        return error(400, f"Invalid pipeline configuration: {_messages(exc)}", "invalid_config")
    row.save()
    return pipeline_config(name)


def pipeline_delete(name: str) -> Result:
    deleted, _ = Pipeline.objects.filter(name=name).delete()
    if not deleted:
        return error(404, f"No pipeline {name!r}", "unknown_pipeline")
    return 200, {"deleted": name}


def latest_background(name: str) -> Result:
    row = Background.objects.filter(camera__name=name).order_by("-created").first()
    if row is None:
        return error(404, f"Camera {name!r} has no background yet (POST .../background collects one)",
                     "no_background")
    return 200, {"background_id": row.background_id, "n_images": row.n_images, "created": row.created.isoformat()}


def _store_background(name: str, image: np.ndarray, n_images: int) -> Result:
    camera = Camera.objects.filter(name=name).first()
    if camera is None:
        return error(404, f"Backgrounds are stored for configured cameras; {name!r} is not one", "unknown_camera")
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S_%f")
    try:
        with transaction.atomic():
            row = Background.objects.create(background_id=f"{name}_{stamp}", camera=camera, n_images=n_images,
                                            width=image.shape[1], height=image.shape[0], data=Background.pack(image))
    except IntegrityError:
        return error(409, "A background was stored at the same instant; try again", "conflict")
    return 200, {"background_id": row.background_id, "n_images": n_images}


# --- live (async) --------------------------------------------------------------------------------

async def geometry(name: str, timeout: float) -> Result:
    target = await camera_named(name)
    if target is None:
        return error(404, f"No camera {name!r}", "unknown_camera")
    images, shape, problems = await grab(target, 1, timeout)
    if not images:
        return error(504, f"No frame from camera {name!r} within {timeout:g} s" + (f": {problems[-1]}"
                                                                                  if problems else ""), "no_frame")
    height, width = images[0].shape[:2]
    return 200, {"geometry": [width, height], "width": width, "height": height,
                 "colorMode": shape.color_mode if shape else None, "dataType": shape.data_type if shape else None}


async def image_png(name: str, timeout: float, log: bool) -> tuple[int, bytes | dict[str, Any]]:
    target = await camera_named(name)
    if target is None:
        return error(404, f"No camera {name!r}", "unknown_camera")
    images, _, problems = await grab(target, 1, timeout)
    if not images:
        return error(504, f"No frame from camera {name!r} within {timeout:g} s" + (f": {problems[-1]}"
                                                                                  if problems else ""), "no_frame")
    return 200, await asyncio.to_thread(_png, images[0], log)  # a megapixel PNG takes ~20 ms: off the loop


def _png(image: np.ndarray, log: bool) -> bytes:
    pixels = to_8bit(image, log)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


async def collect(name: str, n_images: int, timeout: float) -> Result:
    if await sync_to_async(Camera.objects.filter(name=name).exists)() is False:
        return error(404, f"Backgrounds are stored for configured cameras; {name!r} is not one", "unknown_camera")
    target = await camera_named(name)
    if target is None:
        return error(404, f"No camera {name!r}", "unknown_camera")
    images, _, problems = await grab(target, n_images, timeout)
    if len(images) < n_images:
        return error(504, f"Only {len(images)} of {n_images} frames arrived within {timeout:g} s"
                     + (f": {problems[-1]}" if problems else ""), "no_frame")
    background = await sync_to_async(collect_background)(images)
    return await sync_to_async(_store_background)(name, background, n_images)
