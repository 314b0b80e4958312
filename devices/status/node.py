"""The channel-layer side of the status: every process answers, the asking one merges.

One node per event loop (a server process, the bridge process, or both in the embedded
mode) joins the group ``ophydsite.status`` on the default layer. A status request goes to
the group with the asker's channel; each node answers with its snapshot, and the asker
merges what arrived within the deadline (about a second). A request to close a socket goes
to the group too; only the process that holds the socket acts and answers.

The hub and the bridge attach to the node of their loop when they start and detach when
they stop; the last one to leave stops it, so tests that start and stop stacks leak nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from devices.channel_layer import messages as m
from devices.channel_layer.reader import serve_channel

from .merge import merge_snapshots
from .registry import CLOSE_BY_STAFF, CLOSE_BY_STAFF_REASON, SOCKETS, SocketRegistry
from .snapshot import Limits, Rates, process_id, process_snapshot

log = logging.getLogger(__name__)

GATHER_TIMEOUT_S = 1.0
# Once every process seen before has answered, stop waiting after this long (a new process
# answering later is seen at the next request).
GATHER_SETTLE_S = 0.25
CLOSE_TIMEOUT_S = 3.0
FORGET_S = 600.0  # a process not seen for this long is no longer listed as missing
RETRY_S = 5.0


# Where the camera app's feeds report (camera/apps.py registers it): the hub and the bridge
# attach to this module, and they sit below the camera app (.importlinter), so it cannot import it.
_camera_providers: list[Callable[[], dict[str, dict[str, Any]]]] = []


def provide_cameras(stats: Callable[[], dict[str, dict[str, Any]]]) -> None:
    """Register the camera app's feed statistics (once, at Django's app loading)."""
    if stats not in _camera_providers:
        _camera_providers.append(stats)


def _camera_stats() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for stats in _camera_providers:
        out.update(stats())
    return out


def _upstream() -> int:
    from devices.metrics.instruments import UPSTREAM

    return sum(UPSTREAM.values())


class StatusNode:
    """This process on the status group: answers requests, gathers answers for its askers."""

    def __init__(self, layer: Any, *, process: str | None = None, sockets: SocketRegistry = SOCKETS,
                 cameras: Callable[[], dict[str, dict[str, Any]]] = _camera_stats,
                 upstream: Callable[[], int] = _upstream) -> None:
        self.layer = layer
        self.process = process or process_id()
        self.sockets = sockets
        self.started = time.time()
        self.hubs: list[Any] = []
        self.bridges: list[Any] = []
        self.channel = ""
        self.joined = asyncio.Event()
        self._cameras = cameras
        self._upstream = upstream
        self._rates = Rates()
        self._waiting: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._seen: dict[str, tuple[float, str]] = {}  # process -> (wall time last answered, role)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="status-node")

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._runner] if self._runner else [])]:
            task.cancel()
        if self.channel:
            try:
                await self.layer.group_discard(m.STATUS_GROUP, self.channel)
            except Exception:  # noqa: BLE001 - the layer may be gone already
                pass

    async def _run(self) -> None:
        while True:
            try:
                if not self.channel:
                    channel = await self.layer.new_channel()
                    await self.layer.group_add(m.STATUS_GROUP, channel)
                    self.channel = channel
                    self.joined.set()
                await serve_channel(self.layer, self.channel, self.handle, "status")
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - status is not worth stopping the process for
                log.exception("status: joining %s failed; retrying in %g s", m.STATUS_GROUP, RETRY_S)
                await asyncio.sleep(RETRY_S)

    # --- this process --------------------------------------------------------------------------

    def snapshot(self, limits: Limits) -> dict[str, Any]:
        return process_snapshot(process=self.process, started=self.started, sockets=self.sockets.all(),
                                hubs=list(self.hubs), bridges=list(self.bridges), cameras=self._cameras(),
                                upstream=self._upstream(), rates=self._rates, limits=limits)

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == m.STATUS_REQUEST:
            self._spawn(self._answer(message))
        elif kind == m.STATUS_CLOSE:
            if message.get("process") == self.process:
                self._spawn(self._close(message))
        elif kind in (m.STATUS_REPORT, m.STATUS_CLOSED):
            queue = self._waiting.get(str(message.get("request", "")))
            if queue is not None:
                queue.put_nowait(message)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        limits = Limits(max_names=_bounded(message.get("max_names"), Limits.max_names),
                        max_pvs=_bounded(message.get("max_pvs"), Limits.max_pvs))
        snapshot = self.snapshot(limits)
        await self._reply(message, {"type": m.STATUS_REPORT, "snapshot": snapshot})

    async def _close(self, message: dict[str, Any]) -> None:
        """Close one of this process's sockets: release what it held first, so it is gone from
        the status at once even if the client never completes the close handshake."""
        sock = self.sockets.remove(str(message.get("socket", "")))
        if sock is None:
            outcome: dict[str, Any] = {"found": False}
        else:
            outcome = {"found": True, "closed": True, "socket": _described(sock)}
            code = message.get("code")
            reason = str(message.get("reason") or CLOSE_BY_STAFF_REASON)[:120]
            try:
                end = getattr(sock.session, "end", None)
                if end is not None:
                    await end()
                await sock.close(code if isinstance(code, int) else CLOSE_BY_STAFF, reason)
            except Exception as exc:  # noqa: BLE001 - the peer may be gone already: still released
                outcome["closed"] = False
                outcome["error"] = repr(exc)
            log.info("socket %s of %s (%s) closed by staff", sock.id, sock.user, sock.client)
        await self._reply(message, {"type": m.STATUS_CLOSED, "outcome": outcome})

    async def _reply(self, request: dict[str, Any], answer: dict[str, Any]) -> None:
        reply = request.get("reply")
        if not isinstance(reply, str) or not reply:
            return
        try:
            await self.layer.send(reply, {**answer, "request": request.get("request"), "process": self.process})
        except Exception:  # noqa: BLE001 - the asker gives up after its deadline anyway
            log.exception("status: answering %s failed", reply)

    # --- asking every process --------------------------------------------------------------------

    async def gather(self, limits: Limits, *, timeout: float = GATHER_TIMEOUT_S,
                     bridge_shards: int = 0) -> dict[str, Any]:
        """Every process's snapshot, merged. ``bridge_shards``: shards of an external bridge
        expected to answer (0: the bridge is embedded in the servers)."""
        reports: dict[str, dict[str, Any]] = {}
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        message = {"type": m.STATUS_REQUEST, "max_names": limits.max_names, "max_pvs": limits.max_pvs}
        now = time.time()
        expected = {p for p, (seen, _) in self._seen.items() if now - seen < FORGET_S}
        try:
            answers = self._ask(message, timeout, lambda got: bool(expected) and expected <= got)
            async with aclosing(answers):
                async for answer in answers:
                    snapshot = answer.get("snapshot")
                    if isinstance(snapshot, dict) and isinstance(snapshot.get("process"), str):
                        snapshot["answered_ms"] = round((loop.time() - started) * 1000, 1)
                        reports[snapshot["process"]] = snapshot
        except Exception as exc:  # noqa: BLE001 - the layer is down: at least this process
            log.exception("status: asking the other processes failed")
            errors.append(f"the channel layer failed ({exc!r}): only this process is shown")
            reports[self.process] = self.snapshot(limits)
        now = time.time()
        for process, report in reports.items():
            self._seen[process] = (now, str(report.get("role")))
        missing = [{"process": p, "role": role, "last_seen": seen} for p, (seen, role) in sorted(self._seen.items())
                   if p not in reports and now - seen < FORGET_S]
        shards = {b["shard"] for r in reports.values() for b in r.get("bridges", ())}
        missing += [{"process": f"bridge shard {i}/{bridge_shards}", "role": "bridge", "last_seen": None}
                    for i in range(bridge_shards) if i not in shards
                    and not any(x["role"] == "bridge" for x in missing)]
        merged = merge_snapshots(list(reports.values()), missing=missing, limits=limits)
        merged["asked_by"] = self.process
        merged["errors"] = errors
        return merged

    async def close_socket(self, *, process: str, socket: str, code: int = CLOSE_BY_STAFF,
                           reason: str = CLOSE_BY_STAFF_REASON,
                           timeout: float = CLOSE_TIMEOUT_S) -> dict[str, Any] | None:
        """Ask ``process`` to close its socket ``socket``: its outcome ({found, closed, socket}),
        or None if that process did not answer in time."""
        message = {"type": m.STATUS_CLOSE, "process": process, "socket": socket, "code": code, "reason": reason}
        answers = self._ask(message, timeout, lambda got: process in got)
        async with aclosing(answers):
            async for answer in answers:
                if answer.get("process") == process and isinstance(answer.get("outcome"), dict):
                    return answer["outcome"]
        return None

    async def _ask(self, message: dict[str, Any], timeout: float,
                   enough: Callable[[set[str]], bool]) -> AsyncIterator[dict[str, Any]]:
        """Send ``message`` to the group and yield the answers until ``timeout``, or until
        ``enough`` of the processes answered (after GATHER_SETTLE_S)."""
        await asyncio.wait_for(self.joined.wait(), timeout)
        request = uuid.uuid4().hex
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting[request] = queue
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settle = loop.time() + min(GATHER_SETTLE_S, timeout)
        got: set[str] = set()
        try:
            await self.layer.group_send(m.STATUS_GROUP, {**message, "request": request, "reply": self.channel})
            while True:
                now = loop.time()
                if now >= deadline or (got and enough(got) and now >= settle):
                    return
                wait = deadline - now if not (got and enough(got)) else settle - now
                try:
                    answer = await asyncio.wait_for(queue.get(), max(wait, 0.001))
                except TimeoutError:
                    continue
                got.add(str(answer.get("process")))
                yield answer
        finally:
            self._waiting.pop(request, None)


def _described(sock: Any) -> dict[str, Any]:
    return {"id": sock.id, "path": sock.path, "protocol": sock.protocol, "user": sock.user, "client": sock.client,
            "since": sock.since}


def _bounded(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100_000:
        return value
    return default


# --- one node per event loop and layer -------------------------------------------------------------

# A process has one loop and one default layer; tests may run several private layers on one loop.
_nodes: dict[tuple[asyncio.AbstractEventLoop, int], StatusNode] = {}


async def status_attach(layer: Any, owner: Any, kind: str) -> StatusNode:
    """Put a hub (``kind`` "hub") or bridge ("bridge") on the node of this loop and ``layer``,
    starting the node first."""
    loop = asyncio.get_running_loop()
    for stale in [key for key in _nodes if key[0].is_closed()]:
        _nodes.pop(stale, None)
    node = _nodes.get((loop, id(layer)))
    if node is None:
        node = _nodes[(loop, id(layer))] = StatusNode(layer)
        node.start()
    (node.hubs if kind == "hub" else node.bridges).append(owner)
    return node


async def status_detach(owner: Any) -> None:
    """Take a hub or bridge off its node; the last one out stops the node."""
    loop = asyncio.get_running_loop()
    for key, node in list(_nodes.items()):
        if key[0] is not loop or (owner not in node.hubs and owner not in node.bridges):
            continue
        for owners in (node.hubs, node.bridges):
            if owner in owners:
                owners.remove(owner)
        if not node.hubs and not node.bridges:
            _nodes.pop(key, None)
            await node.stop()


def status_node(layer: Any) -> StatusNode | None:
    """The node of the running loop on ``layer``, if a hub or bridge runs there."""
    try:
        return _nodes.get((asyncio.get_running_loop(), id(layer)))
    except RuntimeError:
        return None
