"""``GET /api/v1/status`` and ``POST /api/v1/status/close``: the live status, for staff only.

Staff means an active user with ``is_staff``, by browser session or by an API token of such
a user. Session POSTs need Django's CSRF token; token requests do not (no cookie to ride on).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field

from devices.access.http import csrf_refusal

from .services import Staff, limits_from, socket_close, status_read

router = Router(tags=["Status"])


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    error: str
    code: str


class CloseRequest(Schema):
    """Which socket to close: the ``process`` and ``id`` the status lists it with."""

    process: str = Field(min_length=1, max_length=200, examples=["host:12345"])
    socket: str = Field(min_length=1, max_length=200, examples=["pv-socket-3fa2c1"])


async def staff_of(request: HttpRequest, path: str) -> Staff | tuple[int, dict[str, Any]]:
    """The staff member asking, or the refusal (401 anonymous, 403 not staff)."""
    token = getattr(request, "api_token", None)
    user = request.user if token is not None else await request.auser()
    request.user = user
    if not user.is_authenticated:
        return 401, {"error": "The status needs a staff login or a staff user's API token "
                              "(Authorization: Bearer <token>)", "code": "unauthenticated"}
    if not (user.is_active and user.is_staff):
        return 403, {"error": f"The status is for staff; {user.get_username()} is not staff", "code": "forbidden"}
    return Staff(username=user.get_username(), user_id=user.pk, token=token or "",
                 address=request.META.get("REMOTE_ADDR") or "", origin=request.headers.get("Origin", ""), path=path)


@router.get("/status", response={200: dict[str, Any], (401, 403, 422): ErrorBody})
async def status(request: HttpRequest, max_names: int | None = Query(None, ge=0, le=10_000),
                 max_pvs: int | None = Query(None, ge=0, le=10_000)) -> Status[Any]:
    """Every open socket, PV held, camera, bridge shard and the Queue Server console source, of
    every process (scaled mode: each answers through the channel layer within ~1 s; those that
    do not are in ``missing``). Lists are capped: ``max_names`` names per socket (50),
    ``max_pvs`` PVs and lease entries (500); the ``*_count`` fields count everything."""
    staff = await staff_of(request, "rest")
    if isinstance(staff, tuple):
        return Status(*staff)
    return Status(200, await status_read(limits=limits_from(max_names, max_pvs)))


@router.post("/status/close", response={200: dict[str, Any], (400, 401, 403, 404, 422, 503): ErrorBody})
async def close_socket(request: HttpRequest, payload: CloseRequest) -> Status[Any]:
    """Close a socket (close code 4000, reason "closed by staff"); audited, also when the
    socket is gone (404 ``unknown_socket``) or its process does not answer (404 ``unknown_process``)."""
    staff = await staff_of(request, "rest")
    if isinstance(staff, tuple):
        return Status(*staff)
    refused = csrf_refusal(request)
    if refused:
        return Status(403, {"error": refused, "code": "csrf"})
    return Status(*await socket_close(staff=staff, process=payload.process, socket=payload.socket))
