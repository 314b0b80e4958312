"""REST endpoints of the Queue Server actions (``/api/v1/qserver/...``) and its queue.

Handlers only parse: each action goes through ``qsconsole.services.qserver_action_run``
(access rules of target ``qserver``, checks, audit, the Queue Server's answer) and its status
becomes an HTTP status. bluesky-httpserver is asked by the server with its API key.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Status
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from devices.access import request_guard
from devices.access.http import csrf_refusal
from qsconsole.actions import action_catalogue
from qsconsole.qs_http import QsReply, qs_http_client
from qsconsole.selectors import qserver_plans_allowed, qserver_queue_get
from qsconsole.services import ActionOutcome, qserver_action_run

from .api import ErrorOut

router = Router(tags=["Queue Server actions"])

HTTP = {"done": 200, "unknown_action": 404, "unauthenticated": 401, "forbidden": 403, "csrf": 403,
        "bad_params": 400, "plan_not_allowed": 400, "qserver_refused": 409, "qserver_unavailable": 503,
        "qserver_timeout": 504, "qserver_error": 502, "audit_unavailable": 503}
ERRORS = frozenset({400, 401, 403, 404, 409, 422, 502, 503, 504})

def _uid() -> Any:
    return Field(default=None, min_length=1, max_length=200, examples=["9c2a9b1e-5f0e-4d4b-8a55-3c1f2b7d6e10"])


Position = StrictInt | Literal["front", "back"]


class ActionOut(BaseModel):
    """A done action: the Queue Server's answer (``success``, ``msg``, ``item`` …)."""

    ok: bool
    action: str
    status: str
    message: str
    answer: dict[str, Any] | None
    item_uid: str | None
    duration_s: float


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueAddIn(_In):
    """A plan item; by default at the back of the queue (or ``pos``, or next to an item)."""

    name: StrictStr = Field(min_length=1, max_length=200, examples=["count"])
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = Field(default=None, examples=[{"detectors": ["det"], "num": 3}])
    pos: Position | None = None
    before_uid: StrictStr | None = _uid()
    after_uid: StrictStr | None = _uid()


class QueueMoveIn(_In):
    """The item (``uid`` or ``pos``) and where it goes (``pos_dest``, ``before_uid`` or ``after_uid``)."""

    uid: StrictStr | None = _uid()
    pos: Position | None = None
    pos_dest: Position | None = None
    before_uid: StrictStr | None = _uid()
    after_uid: StrictStr | None = _uid()


class QueueRemoveIn(_In):
    """The item to remove: ``uid`` or ``pos``."""

    uid: StrictStr | None = _uid()
    pos: Position | None = None


class PauseIn(_In):
    option: Literal["deferred", "immediate"] = "deferred"


def _params(payload: BaseModel | None) -> dict[str, Any]:
    """What the client sent (fields left out, or sent as null, are not sent on)."""
    if payload is None:
        return {}
    return {k: v for k, v in payload.model_dump(exclude_unset=True).items() if v is not None}


def _reply(outcome: ActionOutcome) -> Status[Any]:
    body = outcome.as_dict()
    if outcome.ok:
        return Status(200, body)
    return Status(HTTP.get(outcome.status, 502), {"error": outcome.message, "code": outcome.status, **body})


async def _act(request: HttpRequest, action: str, payload: BaseModel | None = None) -> Status[Any]:
    guard = await request_guard(request, path="rest")
    params = _params(payload)
    refused = csrf_refusal(request)
    if refused:  # a forged browser request is on record too
        await guard.refused(target=f"qserver:{action}", signal="", value=params, before=None,
                            decision=await guard.decide(action, "qserver"), outcome="refused")
        return Status(403, {"error": refused, "code": "csrf", "action": action, "ok": False})
    return _reply(await qserver_action_run(guard=guard, client=qs_http_client(), action=action, params=params))


ACT = {200: ActionOut, ERRORS: ErrorOut}


@router.post("/queue/add", response=ACT, summary="Add a plan to the queue (queue:add)")
async def queue_add(request: HttpRequest, payload: QueueAddIn) -> Status[Any]:
    """Checked against the Queue Server's allowed plans and their parameters before it is sent."""
    return await _act(request, "queue:add", payload)


@router.post("/queue/move", response=ACT, summary="Move a queue item (queue:move)")
async def queue_move(request: HttpRequest, payload: QueueMoveIn) -> Status[Any]:
    return await _act(request, "queue:move", payload)


@router.post("/queue/remove", response=ACT, summary="Remove a queue item (queue:remove)")
async def queue_remove(request: HttpRequest, payload: QueueRemoveIn) -> Status[Any]:
    return await _act(request, "queue:remove", payload)


@router.post("/queue/clear", response=ACT, summary="Empty the queue (queue:clear)")
async def queue_clear(request: HttpRequest) -> Status[Any]:
    return await _act(request, "queue:clear")


@router.post("/queue/start", response=ACT, summary="Start the queue (run:start)")
async def queue_start(request: HttpRequest) -> Status[Any]:
    return await _act(request, "run:start")


@router.post("/queue/stop", response=ACT, summary="Stop the queue after the running plan (run:stop_queue)")
async def queue_stop(request: HttpRequest) -> Status[Any]:
    return await _act(request, "run:stop_queue")


@router.post("/queue/stop/cancel", response=ACT, summary="Withdraw a pending queue stop (run:cancel_stop_queue)")
async def queue_stop_cancel(request: HttpRequest) -> Status[Any]:
    return await _act(request, "run:cancel_stop_queue")


@router.post("/re/pause", response=ACT, summary="Pause the running plan (run:pause)")
async def re_pause(request: HttpRequest, payload: PauseIn | None = None) -> Status[Any]:
    """``deferred`` (default): at the plan's next checkpoint; ``immediate``: now."""
    return await _act(request, "run:pause", payload)


@router.post("/re/resume", response=ACT, summary="Resume the paused plan (run:resume)")
async def re_resume(request: HttpRequest) -> Status[Any]:
    return await _act(request, "run:resume")


@router.post("/re/stop", response=ACT, summary="End the paused plan, successfully (run:stop)")
async def re_stop(request: HttpRequest) -> Status[Any]:
    return await _act(request, "run:stop")


@router.post("/re/abort", response=ACT, summary="End the paused plan as failed (run:abort)")
async def re_abort(request: HttpRequest) -> Status[Any]:
    return await _act(request, "run:abort")


@router.post("/re/halt", response=ACT, summary="End the paused plan at once (run:halt)")
async def re_halt(request: HttpRequest) -> Status[Any]:
    return await _act(request, "run:halt")


@router.post("/environment/open", response=ACT, summary="Open the RE worker environment (environment:open)")
async def environment_open(request: HttpRequest) -> Status[Any]:
    return await _act(request, "environment:open")


@router.post("/environment/close", response=ACT, summary="Close the RE worker environment (environment:close)")
async def environment_close(request: HttpRequest) -> Status[Any]:
    return await _act(request, "environment:close")


# --- reads ----------------------------------------------------------------------------------

READ = {200: dict[str, Any], frozenset({401, 502, 503, 504}): ErrorOut}


async def _read_refusal(request: HttpRequest) -> Status[Any] | None:
    guard = await request_guard(request)
    if guard.policy.auth_required and guard.principal.anonymous:
        return Status(401, {"error": "Reading needs a login or an API token (OAS_AUTH_REQUIRED is on)",
                            "code": "unauthenticated"})
    return None


def _unavailable(reply: QsReply) -> Status[Any]:
    code = {"timeout": 504, "unreachable": 503}.get(reply.kind, 502)
    return Status(code, {"error": f"Queue Server unavailable: {reply.error}", "code": "qserver_unavailable"})


@router.get("/actions", response={200: dict[str, Any]}, summary="The queue actions and their parameters")
def actions(request: HttpRequest) -> dict[str, Any]:
    """Each action's name (the access-rule pattern of target ``qserver`` matches it) and parameters."""
    return {"actions": action_catalogue()}


@router.get("/plans/allowed", response=READ, summary="The plans the Queue Server allows")
async def plans_allowed(request: HttpRequest) -> Status[Any]:
    """bluesky-httpserver's ``/api/plans/allowed`` for the server's user: plan names with
    their parameter descriptions (``plans_allowed``) and ``plans_allowed_uid``."""
    refused = await _read_refusal(request)
    if refused is not None:
        return refused
    reply = await qserver_plans_allowed(client=qs_http_client())
    if reply.body is None or reply.kind not in ("ok", "refused"):
        return _unavailable(reply)
    return Status(200, {"plans_allowed": reply.body.get("plans_allowed", {}),
                        "plans_allowed_uid": reply.body.get("plans_allowed_uid")})


@router.get("/queue", response=READ, summary="The queue, the running item and the history")
async def queue(request: HttpRequest) -> Status[Any]:
    """``items`` (the queue, in order), ``running_item`` (or null), ``history`` (oldest first,
    each with ``result.exit_status``) and the Queue Server's ``*_uid`` of each."""
    refused = await _read_refusal(request)
    if refused is not None:
        return refused
    snapshot, failed = await qserver_queue_get(client=qs_http_client())
    if snapshot is None:
        assert failed is not None
        return _unavailable(failed)
    return Status(200, snapshot)
