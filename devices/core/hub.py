"""The per-process hub: one interest per PV, fanned out to local clients.

Clients never join channel-layer groups themselves (measured several times slower, see
ARCHITECTURE.md). The hub leases a PV from the bridge when its first local client
subscribes; the bridge then sends the PV's updates batched per tick: an embedded bridge (on
this loop) hands them over as Python objects (``channel_layer.local``), a bridge elsewhere
sends them to the hub's channel as one ``pv.batch`` message. The hub keeps each PV's latest
value and metadata so a new client is served at once, and hands each update to every local
client's mailbox. Leases are renewed, so a crashed worker's PVs are released.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol

import orjson
from channels.exceptions import ChannelFull

from devices.channel_layer import local
from devices.channel_layer import messages as m
from devices.channel_layer.reader import serve_channel
from devices.metrics import instruments as metrics
from devices.status.node import status_attach, status_detach

from .routing import Routes, merge_describe, merge_reload

log = logging.getLogger(__name__)

_NO_BRIDGE = "The bridge did not answer (or its command queue is full); is it running (manage.py runbridge)?"


class Update:
    """One bridge message, with the client texts rendered from it cached per variant."""

    __slots__ = ("kind", "msg", "_texts")

    def __init__(self, kind: str, msg: dict[str, Any]) -> None:
        self.kind = kind
        self.msg = msg
        self._texts: dict[Hashable, str] = {}

    def text(self, variant: Hashable, render: Callable[..., str], *args: Any) -> str:
        """The client text of ``variant``: ``render(*args)`` the first time it is asked for,
        then the same string (arguments, not a closure: this runs per update and client)."""
        text = self._texts.get(variant)
        if text is None:
            text = self._texts[variant] = render(*args)
        return text

    @property
    def connected(self) -> bool:
        if self.kind == "meta":
            return bool(self.msg["meta"].get("connected"))
        return bool(self.msg.get("connected"))


class HubClient(Protocol):
    def deliver(self, pv: str, update: Update) -> None: ...


class ConsoleListener(Protocol):
    def console_lines(self, entries: list[dict[str, Any]]) -> None:
        """New Queue Server console entries ({seq, time, msg}), oldest first."""

    def console_state(self, state: dict[str, Any]) -> None:
        """The console source connected or went away ({connected, source, message})."""


class RegistryListener(Protocol):
    def registry_reloaded(self, devices: list[str]) -> None:
        """The bridge reloaded its device registry; ``devices`` are the names it holds now."""


def _same(a: dict[str, Any], b: dict[str, Any], kind: str) -> bool:
    """Whether two bridge messages of one PV say the same (a snapshot repeating an update)."""
    if kind == "meta":
        return a["meta"] == b["meta"]
    # The timestamp first: it differs on nearly every update, so one comparison decides.
    return (a.get("timestamp") == b.get("timestamp") and a.get("value") == b.get("value")
            and a.get("connected") == b.get("connected") and a.get("severity") == b.get("severity")
            and a.get("read_access") == b.get("read_access") and a.get("write_access") == b.get("write_access"))


class Hub:
    """Fan-out point of one worker process."""

    def __init__(self, *, layer: Any, command_layer: Any, lease_s: float, shards: int = 1) -> None:
        self._layer = layer
        self._commands = command_layer
        self._lease_s = lease_s
        self.routes = Routes(shards)  # which bridge shard reads which command
        self.channel = ""
        self._clients: dict[str, set[HubClient]] = {}
        self._state: dict[str, dict[str, Update]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._registry_listeners: set[RegistryListener] = set()
        self._console_listeners: set[ConsoleListener] = set()
        self._console_joined = False
        self.delivered = 0
        self._updates: dict[str, int] = {}  # value updates handed out per PV held (the status page)
        metrics.hub_started(self)

    async def start(self) -> None:
        self.channel = await self._layer.new_channel()
        local.register(self.channel, self.on_updates)  # an embedded bridge hands batches over directly
        await self._layer.group_add(m.REGISTRY_GROUP, self.channel)
        await self._layer.group_add(m.ACCESS_GROUP, self.channel)
        self._tasks = [
            asyncio.create_task(serve_channel(self._layer, self.channel, self.dispatch, "hub"), name="hub-receive"),
            asyncio.create_task(self._renew_loop(), name="hub-renew"),
        ]
        await status_attach(self._layer, self, "hub")

    async def stop(self) -> None:
        local.unregister(self.channel)
        for task in self._tasks:
            task.cancel()
        await status_detach(self)

    # --- subscriptions --------------------------------------------------------------------

    async def subscribe(self, client: HubClient, names: Iterable[str]) -> None:
        """Add ``client`` to each PV; cached state is delivered at once."""
        new: list[str] = []
        for name in names:
            clients = self._clients.get(name)
            if clients is None:
                self._clients[name] = {client}
                new.append(name)
                continue
            clients.add(client)
            for update in self._state.get(name, {}).values():
                client.deliver(name, update)
        if new:
            await self._command(m.SUBSCRIBE, new)

    async def unsubscribe(self, client: HubClient, names: Iterable[str]) -> None:
        gone: list[str] = []
        for name in names:
            clients = self._clients.get(name)
            if clients is None or client not in clients:
                continue
            clients.discard(client)
            if not clients:
                del self._clients[name]
                self._state.pop(name, None)
                self._updates.pop(name, None)
                gone.append(name)
        if gone:
            await self._command(m.RELEASE, gone)

    def current(self, name: str) -> list[Update]:
        return list(self._state.get(name, {}).values())

    def holds(self, name: str) -> bool:
        return name in self._clients

    def held(self) -> list[tuple[str, int, int, dict[str, Any] | None]]:
        """(name, local clients, value updates handed out, latest value message) of every PV and
        device topic held: what the status page lists."""
        out = []
        for name, clients in list(self._clients.items()):
            value = self._state.get(name, {}).get("value")
            out.append((name, len(clients), self._updates.get(name, 0), value.msg if value is not None else None))
        return out

    async def wait_connected(self, name: str, timeout: float) -> bool:
        """True once the PV is connected, False if that does not happen within ``timeout``."""
        meta = self._state.get(name, {}).get("meta")
        if meta is not None and meta.connected:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(name, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(name, None)

    async def set(self, name: str, value: Any, timeout: float) -> dict[str, Any]:
        """Ask the bridge to set a PV; returns its outcome (see bridge/setter.py)."""
        outcome = await self._ask({"type": m.SET, "pv": name, "value": value, "timeout": timeout}, timeout + 5.0,
                                  self.routes.owner(name)) or {"status": "bridge_unavailable", "message": _NO_BRIDGE}
        metrics.set_finished(outcome)
        return outcome

    async def stop_motion(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the bridge to stop the positioner behind a device topic."""
        outcome = await self._ask({"type": m.STOP, "pv": name}, timeout, self.routes.owner(name))
        return outcome or {"status": "bridge_unavailable", "message": _NO_BRIDGE}

    async def describe(self, devices: list[str], timeout: float = 20.0) -> dict[str, Any]:
        """Ask the bridge what each device streams (see bridge/device_plan.py); the bridge answers
        after a reload in progress, such as the startup load."""
        why = f"No answer from the bridge within {timeout:g} s: it is not running or still loading startup files"
        unavailable = {"status": "bridge_unavailable", "error": why, "devices": {}, "known": []}
        if self.routes.count == 1:
            return await self._ask({"type": m.DESCRIBE, "devices": devices}, timeout) or unavailable
        if not devices:  # every shard knows the whole registry: the first answer will do
            return await self._first_answer({"type": m.DESCRIBE, "devices": []}, timeout) or unavailable
        parts = self.routes.devices(devices)
        replies = await asyncio.gather(*(
            self._ask({"type": m.DESCRIBE, "devices": part}, timeout, channel) for channel, part in parts.items()))
        missing = [self.routes.label(c) for c, r in zip(parts, replies, strict=True) if r is None]
        if missing:
            return {**unavailable, "error": f"{why} ({', '.join(missing)})"}
        return merge_describe([r for r in replies if r is not None])

    def listen_registry(self, listener: RegistryListener) -> None:
        self._registry_listeners.add(listener)

    def unlisten_registry(self, listener: RegistryListener) -> None:
        self._registry_listeners.discard(listener)

    async def console_listen(self, listener: ConsoleListener) -> None:
        """Follow the Queue Server console; the hub joins its group once, for all its clients."""
        self._console_listeners.add(listener)
        if not self._console_joined:
            self._console_joined = True
            await self._layer.group_add(m.CONSOLE_GROUP, self.channel)
        await self._console_watch()

    def console_unlisten(self, listener: ConsoleListener) -> None:
        self._console_listeners.discard(listener)

    async def console_replay(self, *, after: int | None, last: int, timeout: float = 10.0) -> dict[str, Any] | None:
        """Console entries from the bridge's ring: after entry ``after``, or the ``last`` ones."""
        return await self._ask({"type": m.CONSOLE_REPLAY, "after": after, "last": last}, timeout,
                               self.routes.console)

    async def _console_watch(self) -> None:
        try:
            await self._commands.send(self.routes.console, {"type": m.CONSOLE_WATCH, "hub": self.channel})
        except ChannelFull:
            log.warning("bridge command channel full; console watch sent at the next renew")

    async def reload_devices(self, timeout: float) -> dict[str, Any]:
        """Ask the bridge (every shard) to reload the startup files; returns its report."""
        channels = self.routes.channels
        replies = await asyncio.gather(*(self._ask({"type": m.RELOAD}, timeout, c) for c in channels))
        outcome = merge_reload(dict(zip(channels, replies, strict=True)), self.routes)
        return outcome or {"status": "bridge_unavailable", "errors": {"bridge": _NO_BRIDGE}}

    async def _first_answer(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Ask every shard; the first reply, or None if none came in time."""
        pending = {asyncio.ensure_future(self._ask(message, timeout, c)) for c in self.routes.channels}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.result() is not None:
                        return task.result()
            return None
        finally:
            for task in pending:
                task.cancel()

    async def _ask(self, message: dict[str, Any], timeout: float, channel: str | None = None) -> dict[str, Any] | None:
        """Send a command to a bridge shard (the first by default) and wait for its reply;
        None if none came in time."""
        request = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[request] = future
        try:
            await self._commands.send(channel or self.routes.channels[0],
                                      {**message, "hub": self.channel, "request": request})
            return await asyncio.wait_for(future, timeout)
        except (TimeoutError, ChannelFull):
            return None
        finally:
            self._requests.pop(request, None)

    # --- incoming ---------------------------------------------------------------------------

    def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == m.PV_BATCH:
            self._on_batch(message.get("updates") or "[]")
        elif kind == m.PV_VALUE or kind == m.PV_META:
            self.on_updates([message])
        elif kind == m.ACCESS_CHANGED:
            user_id = message.get("user_id")
            for listener in list(self._registry_listeners):
                poke = getattr(listener, "access_changed", None)
                if poke is not None:
                    poke(user_id)
        elif kind == m.CONSOLE_LINES:
            entries = message.get("entries") or []
            for listener in list(self._console_listeners):
                listener.console_lines(entries)
        elif kind == m.CONSOLE_STATE:
            for listener in list(self._console_listeners):
                listener.console_state(message)
        elif kind == m.DEVICES_RELOADED:
            names = [n for n in message.get("devices") or [] if isinstance(n, str)]
            for listener in list(self._registry_listeners):
                listener.registry_reloaded(names)
        elif kind == m.REPLY:
            future = self._requests.get(message.get("request", ""))
            if future is not None and not future.done():
                future.set_result(message.get("outcome") or {})

    def _on_batch(self, text: str) -> None:
        """A tick's updates from the layer (a bridge in another process), as JSON text."""
        self.on_updates(orjson.loads(text))

    def on_updates(self, messages: list[dict[str, Any]]) -> None:
        """A tick's updates of the PVs this process leases, oldest first. The messages are
        the bridge's own when it shares this loop: read, never changed."""
        on_update = self._on_update
        for msg in messages:
            kind = msg.get("type")
            if kind == m.PV_VALUE:
                on_update(Update("value", msg))
            elif kind == m.PV_META:
                on_update(Update("meta", msg))

    def _on_update(self, update: Update) -> None:
        msg = update.msg
        name = msg["pv"]
        clients = self._clients.get(name)
        if clients is None:
            return  # released while this was in flight
        state = self._state.get(name)
        if state is None:
            state = self._state[name] = {}
        kind = update.kind
        previous = state.get(kind)
        if previous is not None and _same(previous.msg, msg, kind):
            return
        state[kind] = update
        if kind == "value":
            self._updates[name] = self._updates.get(name, 0) + 1
        metrics.LATENCY.observe_update(msg)
        if self._waiters and update.connected:
            for future in self._waiters.get(name, ()):
                if not future.done():
                    future.set_result(None)
        for client in list(clients):
            client.deliver(name, update)
        self.delivered += len(clients)

    # --- bridge interest --------------------------------------------------------------------

    async def _command(self, kind: str, names: list[str]) -> None:
        """Interest in ``names``, each sent to the shard that owns it."""
        for channel, chunk in self.routes.interest(names):
            try:
                await self._commands.send(channel, {"type": kind, "hub": self.channel, "pvs": chunk})
            except ChannelFull:
                log.warning("bridge command channel %s full; %s of %d PVs delayed to next renew",
                            channel, kind, len(chunk))

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self._lease_s / 3, 0.5))
            if self._console_listeners:
                await self._console_watch()  # a restarted bridge starts reading the console again
            if not self._clients:
                continue
            try:
                await self._command(m.RENEW, list(self._clients))
            except Exception:  # noqa: BLE001 - retried at the next period
                log.exception("renewing interest with the bridge failed")
