"""Queue actions, run for one requester: rights, checks, audit, the Queue Server's answer.

``qserver_action_run`` is the one path every protocol takes (REST today, the console socket
later), as ``Writer.set`` is for PV and device sets: the action is decided by the access rules
(target ``qserver``, pattern matched against the action's name), its parameters checked (a
plan against the Queue Server's allowed plans), recorded as ``qserver:<action>`` *before*
it is sent and completed with the Queue Server's answer before the reply. A refusal is
recorded too. Nothing here knows HTTP.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from devices.access import QSERVER, AuditUnavailable, Decision, Guard, Level

from .actions import ACTIONS, Action, params_problem, payload_of, plan_problem
from .qs_http import QsHttp, QsReply

# A QsReply's kind -> (outcome status, audit outcome).
_FAILED = {"refused": ("qserver_refused", "qserver_refused"), "timeout": ("qserver_timeout", "timeout"),
           "unreachable": ("qserver_unavailable", "not_connected"), "error": ("qserver_error", "other")}


@dataclass(frozen=True)
class ActionOutcome:
    """What became of one action. ``status``: done | unknown_action | unauthenticated |
    forbidden | bad_params | plan_not_allowed | qserver_refused | qserver_unavailable |
    qserver_timeout | qserver_error | audit_unavailable."""

    action: str
    status: str
    message: str
    answer: dict[str, Any] | None = None  # the Queue Server's JSON answer, when it gave one
    item_uid: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def qserver_action_run(*, guard: Guard, client: QsHttp, action: str, params: Any) -> ActionOutcome:
    """Run queue action ``action`` with ``params`` (a JSON object) for ``guard``'s requester."""
    started = time.monotonic()

    def outcome(status: str, message: str, reply: QsReply | None = None) -> ActionOutcome:
        answer = reply.body if reply is not None else None
        return ActionOutcome(action, status, message, answer, _item_uid(answer),
                             round(time.monotonic() - started, 6))

    spec = ACTIONS.get(action) if isinstance(action, str) else None
    target = f"qserver:{str(action)[:100]}"
    if spec is None:
        why = f"No queue action {str(action)[:100]!r}; the actions: {', '.join(ACTIONS)}"
        await _refuse(guard, target, params, why, None, "bad_value")
        return outcome("unknown_action", why)
    decision = await guard.decide(action, QSERVER)
    if not decision.can_write:
        anonymous = guard.principal.anonymous
        why = f"{guard.principal.describe()} may not {action}: {decision.reason}"
        await _refuse(guard, target, params, why, decision, "refused")
        return outcome("unauthenticated" if anonymous else "forbidden", why)
    why = params_problem(spec, params)
    if why is not None:
        await _refuse(guard, target, params, why, decision, "bad_value")
        return outcome("bad_params", why)
    if spec.name == "queue:add":
        refused = await _plan_refusal(client, params)
        if refused is not None:
            status, audit_outcome, why, reply = refused
            await _refuse(guard, target, params, why, decision, audit_outcome)
            return outcome(status, why, reply)
    return await _send(guard, client, spec, params, decision, target, outcome)


async def _send(guard: Guard, client: QsHttp, spec: Action, params: dict[str, Any], decision: Decision,
                target: str, outcome: Any) -> ActionOutcome:
    try:
        record = await guard.begin_set(target=target, signal="", value=params, before=None, decision=decision)
    except AuditUnavailable as exc:
        return outcome("audit_unavailable", str(exc))  # not sent: nothing happens unrecorded
    reply = await client.call("POST", spec.path, payload_of(spec, params, user=guard.principal.username))
    if reply.ok:
        uid = _item_uid(reply.body)
        message = str((reply.body or {}).get("msg") or "") or f"The Queue Server did {spec.name}" + (
            f" (item {uid})" if uid else "")
        status, audit_outcome = "done", "done"
    else:
        status, audit_outcome = _FAILED[reply.kind]
        message = f"The Queue Server refused {spec.name}: {reply.error}" if reply.kind == "refused" else (
            f"{spec.name} was not done: {reply.error}")
    await guard.finish_set(record, outcome=audit_outcome, message=message, after=_answer_text(reply))
    return outcome(status, message, reply)


async def _plan_refusal(client: QsHttp, params: dict[str, Any]) -> tuple[str, str, str, QsReply | None] | None:
    """Why the plan item must not be sent: (status, audit outcome, reason, reply), or None."""
    reply = await client.call("GET", "/api/plans/allowed")
    if not reply.ok:
        status, audit_outcome = _FAILED[reply.kind]
        return status, audit_outcome, f"The allowed plans could not be read: {reply.error}", reply
    allowed = (reply.body or {}).get("plans_allowed")
    if not isinstance(allowed, dict):
        return "qserver_error", "other", "The Queue Server's allowed plans are not a JSON object", None
    why = plan_problem(allowed, params["name"], params.get("args", []), params.get("kwargs", {}))
    if why is not None:
        status = "plan_not_allowed" if params["name"] not in allowed else "bad_params"
        return status, "bad_value", why, None
    return None


async def _refuse(guard: Guard, target: str, params: Any, why: str, decision: Decision | None,
                  audit_outcome: str) -> None:
    level = decision.level if decision is not None else Level.NONE
    rule = decision.rule if decision is not None else None
    await guard.refused(target=target, signal="", value=params, before=None,
                        decision=Decision(level, rule, why), outcome=audit_outcome)


def _item_uid(answer: dict[str, Any] | None) -> str | None:
    item = (answer or {}).get("item")
    uid = item.get("item_uid") if isinstance(item, dict) else None
    return uid if isinstance(uid, str) else None


def _answer_text(reply: QsReply) -> str | None:
    """The audit row's "readback after": the Queue Server's answer, without bulky lists."""
    if reply.body is None:
        return None
    keep = {k: v for k, v in reply.body.items() if k in ("success", "msg", "qsize")}
    uid = _item_uid(reply.body)
    if uid:
        keep["item_uid"] = uid
    return json.dumps(keep)
