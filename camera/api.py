"""The camera REST API, in the spirit of cam_server's: cameras, their configuration and
geometry, one image as PNG, backgrounds, processing pipelines. Handlers parse, check the
caller may configure, and delegate to services.py."""

from __future__ import annotations

from typing import Annotated, Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from ninja import Body, Path, Query, Router, Status

from camera import services
from devices.access import request_guard, rest_write_refusal

from .cameras import camera_named

router = Router(tags=["Cameras"])
NAME = r"^[A-Za-z0-9_\-:x]+$"
CameraName = Annotated[str, Path(pattern=NAME, max_length=100, examples=["sim"])]
PipelineName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]+$", max_length=100, examples=["beam"])]
ERRORS = frozenset({400, 401, 403, 404, 405, 409, 422, 504})
ANY = {200: dict[str, Any], ERRORS: dict[str, Any]}
CONFIGURE = "camera.change_camera"


def _out(result: services.Result) -> Status[Any]:
    return Status(*result)


async def _may_configure(request: HttpRequest, what: str) -> HttpResponse | None:
    return await rest_write_refusal(request, permission=CONFIGURE, what=what)


async def _read_refusal(request: HttpRequest, camera: str | None = None) -> Status[Any] | None:
    """Reads follow the policy (OAS_AUTH_REQUIRED) and, for an Area Detector camera, the
    access rules of its array PV, as on the camera socket."""
    guard = await request_guard(request)
    anonymous = not guard.principal.username
    if guard.policy.auth_required and anonymous:
        return Status(401, {"error": "Reading cameras needs a login or an API token (OAS_AUTH_REQUIRED)",
                            "code": "unauthenticated"})
    target = await camera_named(camera) if camera is not None else None
    if target is not None and target.array_pv is not None:
        decision = await guard.decide(target.array_pv, "pv")
        if not decision.can_read:
            return Status(401 if anonymous else 403, {"error": f"No read access to {target.array_pv}: "
                                                      f"{decision.reason}", "code": "forbidden"})
    return None


@router.get("/cameras", response=ANY)
async def list_cameras(request: HttpRequest) -> Status[Any]:
    """Configured cameras, and the built-in simulation."""
    return await _read_refusal(request) or _out(await sync_to_async(services.camera_list)())


@router.get("/cameras/{name}/config", response=ANY)
async def get_camera_config(request: HttpRequest, name: CameraName) -> Status[Any]:
    return await _read_refusal(request) or _out(await sync_to_async(services.camera_config)(name))


@router.put("/cameras/{name}/config", response=ANY)
async def set_camera_config(request: HttpRequest, name: CameraName,
                            config: dict[str, Any] = Body(...)) -> Any:  # noqa: B008
    """Create or change a camera (fields as in GET; validated, 400 names the bad one)."""
    refused = await _may_configure(request, "Configuring cameras")
    return refused or _out(await sync_to_async(services.camera_config_set)(name, config))


@router.delete("/cameras/{name}/config", response=ANY)
async def delete_camera_config(request: HttpRequest, name: CameraName) -> Any:
    refused = await _may_configure(request, "Deleting cameras")
    return refused or _out(await sync_to_async(services.camera_delete)(name))


@router.get("/cameras/{name}/geometry", response=ANY)
async def camera_geometry(request: HttpRequest, name: CameraName,
                          timeout: float = Query(5.0, gt=0, le=60)) -> Status[Any]:
    """Width and height of the frames as users see them (after binning and rotation)."""
    return await _read_refusal(request, name) or _out(await services.geometry(name, timeout))


@router.get("/cameras/{name}/image", response={200: None, ERRORS: dict[str, Any]})
async def camera_image(request: HttpRequest, name: CameraName, timeout: float = Query(5.0, gt=0, le=60),
                       log: bool = False) -> Any:
    """The next frame as an 8-bit PNG (linear, or log with ``log=true``)."""
    refused = await _read_refusal(request, name)
    if refused is not None:
        return refused
    status, body = await services.image_png(name, timeout, log)
    if isinstance(body, bytes):
        return HttpResponse(body, content_type="image/png")
    return Status(status, body)


@router.post("/cameras/{name}/background", response=ANY)
async def collect_background(request: HttpRequest, name: CameraName, n_images: int = Query(10, ge=1, le=1000),
                             timeout: float = Query(30.0, gt=0, le=600)) -> Any:
    """Average the next ``n_images`` frames into a stored background; answers its id."""
    refused = await _may_configure(request, "Collecting backgrounds")
    return refused or _out(await services.collect(name, n_images, timeout))


@router.get("/cameras/{name}/background", response=ANY)
async def latest_background(request: HttpRequest, name: CameraName) -> Status[Any]:
    return await _read_refusal(request) or _out(await sync_to_async(services.latest_background)(name))


@router.get("/pipelines", response=ANY)
async def list_pipelines(request: HttpRequest) -> Status[Any]:
    return await _read_refusal(request) or _out(await sync_to_async(services.pipeline_list)())


@router.get("/pipelines/{name}/config", response=ANY)
async def get_pipeline_config(request: HttpRequest, name: PipelineName) -> Status[Any]:
    return await _read_refusal(request) or _out(await sync_to_async(services.pipeline_config)(name))


@router.put("/pipelines/{name}/config", response=ANY)
async def set_pipeline_config(request: HttpRequest, name: PipelineName,
                              config: dict[str, Any] = Body(...)) -> Any:  # noqa: B008
    """Create or change a pipeline: ``camera``, ``config`` (processing keys), ``background_id``."""
    refused = await _may_configure(request, "Configuring pipelines")
    return refused or _out(await sync_to_async(services.pipeline_config_set)(name, config))


@router.delete("/pipelines/{name}/config", response=ANY)
async def delete_pipeline_config(request: HttpRequest, name: PipelineName) -> Any:
    refused = await _may_configure(request, "Deleting pipelines")
    return refused or _out(await sync_to_async(services.pipeline_delete)(name))
