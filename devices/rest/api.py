"""The REST API ("Ophyd as a Service"), with its OpenAPI schema and the /docs page.

django-ninja serves it: it derives the OpenAPI schema and request validation from the
type hints below, so the schema cannot drift from the code. Handlers only parse, build the
request's guard and delegate to rest_ops (HTTP-free logic) or to the bridge.
"""

from __future__ import annotations

import weakref
from typing import Annotated, Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from ninja import Body, NinjaAPI, Path, Query, Schema, Status
from ninja.errors import HttpError, ValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from devices.access.http import csrf_refusal, request_guard, rest_write_refusal
from devices.core.requests import DEVICE_WORDS, PV_WORDS
from devices.services.reads import Holder
from devices.services.runtime import get_hub
from qsconsole.interlock import current_interlock, plan_activity, status_client

from .ops import RestOps, Result, error

RELOAD_TIMEOUT_S = 120.0
HOLD_LIMIT = 1000  # PVs POST /pvs/{pv} may keep subscribed per server process

api = NinjaAPI(
    title="ophydsite REST API",
    version="1",
    urls_namespace="api-v1",
    docs_url="/docs",
    description=("Ophyd as a Service: read and set EPICS PVs and ophyd devices through the server's bridge, "
                 "under its access rules, Queue Server interlock, write limits and audit log. "
                 "Authenticate with `Authorization: Bearer <API token>`, or a browser session plus Django's "
                 "CSRF token for writes. Errors are JSON: `{\"error\": text, \"code\": word}`."),
)

ERROR_CODES = frozenset({400, 401, 403, 404, 405, 408, 409, 422, 423, 429, 500, 502, 503, 504})
_holders: weakref.WeakKeyDictionary[Any, Holder] = weakref.WeakKeyDictionary()


class ErrorOut(BaseModel):
    """Every error: a text for people, a word for programs, and fields of the case."""

    model_config = ConfigDict(extra="allow")
    error: str
    code: str


# Strict: what the schema says is what is accepted (a JSON true is a boolean, not 1).
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
SetValue = Scalar | list[Scalar]
MAX_BATCH = 500  # instructions in one PUT (also bounded by OAS_MAX_NAMES_PER_REQUEST)
# A PV or device name: printable ASCII without spaces (topics.name_problem, OAS_MAX_NAME_LENGTH).
NAME = r"^[!-~]+$"
PvName = Annotated[str, Path(pattern=NAME, max_length=255, examples=["DEMO:sine"])]
DeviceName = Annotated[str, Path(pattern=NAME, max_length=255, examples=["motor1"])]


class PvInstruction(Schema):
    """Set one PV (ophyd-websocket's EpicsPVInstruction; ``value`` is accepted for ``set_value``)."""

    pv: str = Field(min_length=1, max_length=255, pattern=NAME, examples=["DEMO:m1:sp"])
    set_value: SetValue
    timeout: float | None = Field(default=None, gt=0, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _value_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "set_value" not in data and "value" in data:
            data = {**data, "set_value": data["value"]}
        return data


class DeviceInstruction(Schema):
    """Set a device, or one component of it (ophyd-websocket's OphydDeviceInstruction)."""

    device: str = Field(min_length=1, max_length=255, pattern=NAME, examples=["motor1"])
    set_value: SetValue
    component: str | None = Field(default=None, max_length=255)
    timeout: float | None = Field(default=None, gt=0, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _value_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "set_value" not in data and "value" in data:
            data = {**data, "set_value": data["value"]}
        return data


PvBatch = Annotated[list[PvInstruction], Field(min_length=1, max_length=MAX_BATCH)]
DeviceBatch = Annotated[list[DeviceInstruction], Field(min_length=1, max_length=MAX_BATCH)]
ANY = {200: dict[str, Any], ERROR_CODES: ErrorOut}
WRITE = {200: dict[str, Any], 207: dict[str, Any], ERROR_CODES: ErrorOut}


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> JsonResponse:
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "payload"))
    text = f"Invalid request: {where + ': ' if where else ''}{first.get('msg', 'not valid')}"
    return JsonResponse({"error": text, "code": "bad_request", "detail": exc.errors}, status=422,
                        json_dumps_params={"default": str})


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> JsonResponse:
    return JsonResponse({"error": str(exc), "code": "bad_request"}, status=exc.status_code)


def _out(result: Result) -> Status[Any]:
    return Status(*result)


async def _ops(request: HttpRequest) -> RestOps:
    hub = await get_hub()
    holder = _holders.get(hub)
    if holder is None:
        holder = _holders[hub] = Holder(HOLD_LIMIT)
    guard = await request_guard(request)
    return RestOps(hub=hub, guard=guard, settings=settings.OAS, holder=holder, interlock=current_interlock())


async def _write_ops(request: HttpRequest, kind: str, items: list[tuple[str, str, Any]]) -> RestOps | Result:
    """The ops of a write request, or its refusal (a forged browser write is on record too)."""
    ops = await _ops(request)
    if not 1 <= len(items) <= settings.OAS.max_names_per_request:
        return error(400, f"Send 1 to {settings.OAS.max_names_per_request} instructions", "bad_request")
    refused = csrf_refusal(request)
    if refused:
        for target, signal, value in items:
            await ops.writer.refuse(target=target, kind=kind, signal=signal, value=value, why=refused)
        return error(403, refused, "csrf")
    return ops


# --- EPICS PVs ------------------------------------------------------------------------------

@api.get("/pvs", response=ANY, tags=["EPICS PVs"])
async def list_pvs(request: HttpRequest) -> Status[Any]:
    """The PVs the REST API holds connected (``POST /pvs/{pv}``) in this server process."""
    return _out(await (await _ops(request)).pv_list())


@api.get("/pvs/{path:pv}", response=ANY, tags=["EPICS PVs"])
async def read_pv(request: HttpRequest, pv: PvName, timeout: float | None = Query(None, gt=0)) -> Status[Any]:
    """Read a PV: ``{pv: {value, timestamp, connected, severity}, "meta": {...}}``; connects on
    demand and answers 408 if it does not connect within ``timeout`` (OAS_CONNECT_TIMEOUT_S)."""
    return _out(await (await _ops(request)).pv_read(pv, timeout))


@api.post("/pvs/{path:pv}", response={201: dict[str, Any], ERROR_CODES: ErrorOut}, tags=["EPICS PVs"])
async def connect_pv(request: HttpRequest, pv: PvName, timeout: float | None = Query(None, gt=0)) -> Status[Any]:
    """Keep a PV connected for fast reads and list it in ``GET /pvs`` (409 if already held)."""
    return _out(await (await _ops(request)).pv_hold(pv, timeout))


@api.delete("/pvs/{path:pv}", response=ANY, tags=["EPICS PVs"])
async def release_pv(request: HttpRequest, pv: PvName) -> Status[Any]:
    """Stop holding a PV connected (an addition to ophyd-websocket)."""
    return _out(await (await _ops(request)).pv_release(pv))


@api.put("/pvs", response=WRITE, tags=["EPICS PVs"])
async def set_pvs(request: HttpRequest, payload: PvInstruction | PvBatch = Body(...)) -> Status[Any]:
    """Set one PV, or several (a list: written only if every PV may be written; 207 if some
    set failed). Waits for the IOC's put completion up to ``timeout`` (OAS_SET_TIMEOUT_S)."""
    items = payload if isinstance(payload, list) else [payload]
    ops = await _write_ops(request, "pv", [(i.pv, "", i.set_value) for i in items])
    if isinstance(ops, tuple):
        return _out(ops)
    if isinstance(payload, list):
        return _out(await ops.pv_set_many([(i.pv, i.set_value, i.timeout) for i in payload]))
    return _out(await ops.pv_set(payload.pv, payload.set_value, payload.timeout))


# --- ophyd devices --------------------------------------------------------------------------

@api.get("/devices", response=ANY, tags=["Ophyd Devices"])
async def list_devices(request: HttpRequest) -> Status[Any]:
    """The names of the devices in the registry (startup files)."""
    return _out(await (await _ops(request)).device_list())


@api.get("/devices-info", response=ANY, tags=["Ophyd Devices"])
async def devices_info(request: HttpRequest, timeout: float | None = Query(None, gt=0)) -> Status[Any]:
    """``GET /devices/{name}`` for every device."""
    return _out(await (await _ops(request)).devices_info(timeout))


@api.get("/devices/{name}", response=ANY, tags=["Ophyd Devices"])
async def device_info(request: HttpRequest, name: DeviceName, timeout: float | None = Query(None, gt=0)) -> Status[Any]:
    """Type, class, prefix, connection, description and current values of one device."""
    return _out(await (await _ops(request)).device_info(name, timeout))


@api.put("/devices", response=WRITE, tags=["Ophyd Devices"])
async def set_devices(request: HttpRequest,
                      payload: DeviceInstruction | DeviceBatch = Body(...)) -> Status[Any]:
    """Set a device (a positioner moves and the reply comes when the move ends), or one
    ``component`` of it; a list sets several (as ``PUT /pvs``)."""
    items = payload if isinstance(payload, list) else [payload]
    ops = await _write_ops(request, "device", [(i.device, i.component or "", i.set_value) for i in items])
    if isinstance(ops, tuple):
        return _out(ops)
    if isinstance(payload, list):
        return _out(await ops.device_set_many([(i.device, i.set_value, i.component, i.timeout) for i in payload]))
    return _out(await ops.device_set(payload.device, payload.set_value, payload.component, payload.timeout))


@api.post("/load-devices", response=ANY, tags=["Ophyd Devices"])
async def load_devices(request: HttpRequest) -> Any:
    """Reload the startup files; per-file errors are in the body, the status says if it ran.
    Needs an API token or a session (with CSRF) and the permission devices.reload_devices."""
    refusal = await rest_write_refusal(request, permission="devices.reload_devices", what="Reloading devices")
    if refusal is not None:
        return refusal
    hub = await get_hub()
    outcome = await hub.reload_devices(RELOAD_TIMEOUT_S)
    status = 503 if outcome.get("status") == "bridge_unavailable" else 200
    if status != 200:
        outcome = {"error": str((outcome.get("errors") or {}).get("bridge", "bridge unavailable")),
                   "code": "bridge_unavailable", **outcome}
    return Status(status, outcome)


# --- Queue Server ---------------------------------------------------------------------------

@api.get("/queue-server/status", response=ANY, tags=["Queue Server"])
async def queue_server_status(request: HttpRequest) -> Status[Any]:
    """The Queue Server's ``/api/status`` (through bluesky-httpserver), plus
    ``writes_interlocked``: whether OAS_REQUIRE_QSERVER would refuse a write now."""
    ops = await _ops(request)
    refused = ops.login_refusal()
    if refused:
        return _out(refused)
    answer = await status_client().answer()
    if answer.status is None:
        code = 504 if "did not answer" in (answer.error or "") else (502 if answer.http_status else 503)
        return _out(error(code, f"Queue Server status unavailable: {answer.error}", "qserver_unavailable"))
    busy = plan_activity(answer.status)
    return Status(200, {**answer.status, "writes_interlocked": bool(settings.OAS.require_qserver and busy),
                        "interlock_reason": busy})


# --- self-description -----------------------------------------------------------------------

def _socket(path: str, protocol: str, actions: tuple[str, ...], target: str) -> dict[str, Any]:
    return {"path": path, "protocol": protocol, "actions": list(actions), "target_fields": target}


@api.get("/sockets", response={200: dict[str, Any]}, tags=["WebSockets"])
def websocket_endpoints(request: HttpRequest) -> dict[str, Any]:
    """The WebSocket endpoints this server speaks and their client actions (see docs/protocol.md)."""
    return {"sockets": [
        _socket("/api/v1/pv-socket", "ophyd-websocket pv-socket", PV_WORDS.actions, "pv | pvs"),
        _socket("/api/v1/device-socket", "ophyd-websocket device-socket", DEVICE_WORDS.actions, "device | devices"),
        _socket("/monitor", "pycaserver monitor", ("connect", "disconnect"), "pvname | pvnames"),
    ], "authentication": "session cookie, or Authorization: Bearer <API token> on the handshake",
        "docs": "docs/protocol.md"}
