"""What the status views call: read the merged status, close a socket on staff's word.

HTTP-free: the REST endpoints and the admin page parse, check that the caller is staff and
call one of these.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from devices.access.db import DB_AUDIT

from .node import StatusNode, status_node
from .registry import CLOSE_BY_STAFF, CLOSE_BY_STAFF_REASON
from .snapshot import Limits

Result = tuple[int, dict[str, Any]]
MAX_ID = 200  # characters of a process or socket id


@dataclass(frozen=True)
class Staff:
    """Who asks, for the audit row: a staff user, with a token label if a token was used."""

    username: str
    user_id: int | None
    token: str
    address: str
    origin: str
    path: str  # "rest" or "admin"


async def _node() -> StatusNode:
    """This process's status node (the hub starts it, with the embedded bridge if any)."""
    from channels.layers import get_channel_layer

    from devices.services.runtime import get_hub

    await get_hub()
    node = status_node(get_channel_layer())
    if node is None:  # pragma: no cover - get_hub always attaches the hub
        raise RuntimeError("no status node on this event loop")
    return node


def bridge_shards_expected() -> int:
    """Bridge shards that answer as processes of their own (none when the bridge is embedded)."""
    return 0 if settings.OAS.bridge == "embedded" else settings.OAS.bridge_shards


async def status_read(*, limits: Limits) -> dict[str, Any]:
    """Every process's sockets, PVs, cameras, bridge and console, merged."""
    node = await _node()
    return await node.gather(limits, bridge_shards=bridge_shards_expected())


async def socket_close(*, staff: Staff, process: str, socket: str) -> Result:
    """Close ``socket`` of ``process`` with CLOSE_BY_STAFF. The audit row is written first
    (nothing happens unrecorded) and completed with the outcome, also when the socket or the
    process is not there (404)."""
    if not (0 < len(process) <= MAX_ID and 0 < len(socket) <= MAX_ID):
        return 400, {"error": f"'process' and 'socket' must be 1 to {MAX_ID} characters", "code": "bad_request"}
    request = {"action": "close_socket", "process": process, "socket": socket, "code": CLOSE_BY_STAFF,
               "reason": CLOSE_BY_STAFF_REASON}
    record = {"username": staff.username, "user_id": staff.user_id, "token": staff.token, "client": staff.address,
              "origin": staff.origin[:300], "path": staff.path, "target": f"socket {process}/{socket}"[:300],
              "signal": "close-socket", "value_requested": json.dumps(request), "outcome": "pending"}
    try:
        key = await DB_AUDIT.begin(record)
    except Exception as exc:  # noqa: BLE001 - no record, no close
        return 503, {"error": f"The socket was not closed: its audit record could not be stored ({exc!r})",
                     "code": "audit_unavailable"}
    started = time.monotonic()
    node = await _node()
    outcome = await node.close_socket(process=process, socket=socket)
    if outcome is None:
        status, body = 404, {"error": f"Process {process!r} did not answer: it is not running (or not reachable "
                                      "through the channel layer)", "code": "unknown_process"}
        audit = "not_connected"
    elif not outcome.get("found"):
        status, body = 404, {"error": f"No socket {socket!r} in process {process!r}: it is closed already, "
                                      "or the id is wrong", "code": "unknown_socket"}
        audit = "not_connected"
    else:
        described = outcome.get("socket") or {}
        closed = bool(outcome.get("closed"))
        message = "closed" if closed else f"released; the close frame failed: {outcome.get('error')}"
        status, body = 200, {"closed": True, "process": process, "socket": described, "code": CLOSE_BY_STAFF,
                             "reason": CLOSE_BY_STAFF_REASON, "message": message}
        audit = "done"
    changes = {"outcome": audit, "message": body.get("error") or body.get("message", ""),
               "duration_s": round(time.monotonic() - started, 6)}
    if outcome is not None and outcome.get("socket"):
        changes["value_before"] = json.dumps(outcome["socket"])  # who the socket was: user, address, protocol
    try:
        await DB_AUDIT.finish(key, changes)
    except Exception as exc:  # noqa: BLE001 - the pending row stays: the attempt is on record
        body["audit"] = f"the audit row could not be completed ({exc!r})"
    return status, body


def limits_from(max_names: int | None, max_pvs: int | None) -> Limits:
    """The list caps a request asks for, within bounds."""
    names = Limits.max_names if max_names is None else max(0, min(int(max_names), 10_000))
    pvs = Limits.max_pvs if max_pvs is None else max(0, min(int(max_pvs), 10_000))
    return Limits(max_names=names, max_pvs=pvs)
