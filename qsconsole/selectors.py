"""Reads from the Queue Server for the console and the REST API (no rights needed beyond reading)."""

from __future__ import annotations

import asyncio
from typing import Any

from .qs_http import QsHttp, QsReply


async def qserver_plans_allowed(*, client: QsHttp) -> QsReply:
    """``/api/plans/allowed``: the plans (with parameter descriptions) the server's user group may queue."""
    return await client.call("GET", "/api/plans/allowed")


async def qserver_queue_get(*, client: QsHttp) -> tuple[dict[str, Any] | None, QsReply | None]:
    """The queue, the running item and the history, read together; (snapshot, None) or
    (None, the failed reply)."""
    queue, history = await asyncio.gather(client.call("GET", "/api/queue/get"),
                                          client.call("GET", "/api/history/get"))
    for reply in (queue, history):
        if not reply.ok:
            return None, reply
    q, h = queue.body or {}, history.body or {}
    return {"items": q.get("items", []), "running_item": q.get("running_item") or None,
            "plan_queue_uid": q.get("plan_queue_uid"), "history": h.get("items", []),
            "plan_history_uid": h.get("plan_history_uid")}, None
