"""The bridge process (or task): owns the PV entries and serves commands from workers."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from concurrent.futures import Executor
from typing import Any

from devices.channel_layer import messages as m
from devices.channel_layer import shards
from devices.channel_layer.pvnames import SEPARATOR, PvNameError, source_of, topic_of
from devices.channel_layer.reader import serve_channel
from devices.channel_layer.topics import name_problem, parse_device_topic
from devices.metrics import instruments as metrics
from devices.sources import loop_watchdog
from devices.sources.batch_calls import batcher_for
from devices.sources.ca_context import ca_executor
from devices.sources.ca_source import CaSource
from devices.startup.registry import DeviceRegistry
from devices.startup.reload import registry_reload
from devices.startup.status import device_states, device_states_record
from devices.status.node import status_attach, status_detach
from ophydsite.settings.oas import OasSettings
from qsconsole.qs_http import qs_http_client
from qsconsole.relay import ConsoleRelay

from .device_sources import DevicePlans, device_source
from .entry import PvEntry, SourceFactory
from .publisher import Publisher
from .qserver_follow import QserverFollower
from .setter import SetOutcome, perform_set

log = logging.getLogger(__name__)

MAX_CONCURRENT_SETS = 1000
PVA_PREFIX = "pva" + SEPARATOR


class Bridge:
    """One per deployment, or one per shard: every CA channel of the site's PV clients (of
    the names this shard owns, channel_layer/shards.py) lives here."""

    def __init__(self, *, layer: Any, command_layer: Any, settings: OasSettings,
                 source_factory: SourceFactory = CaSource, executor: Executor | None = None,
                 shard: tuple[int, int] = (0, 1), pva_factory: SourceFactory | None = None) -> None:
        self.shard, self.shards = shard
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"shard {self.shard}/{self.shards}: need 0 <= I < N")
        self.channel = shards.bridge_channel(self.shard, self.shards)
        self._layer = layer
        self._commands = command_layer
        self._settings = settings
        self._source_factory = source_factory  # for Channel Access topics
        self._pva_factory = pva_factory or pva_source  # for pva:// topics
        # Channel Access calls run on threads attached to the one CA context.
        self._executor = executor if executor is not None else (
            ca_executor() if source_factory is CaSource else None)
        self.entries: dict[str, PvEntry] = {}
        self._sets: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.publisher = Publisher(layer)
        self.started = asyncio.Event()
        self.registry = DeviceRegistry()
        self.plans = DevicePlans(self.registry)
        self._reload_lock = asyncio.Lock()
        self._reloads = 0  # completed reloads, so the device-state writer knows rows were rewritten
        # Set once the startup load finished (at once without one): describes wait for it, so a
        # client connecting while the bridge starts is not told its device does not exist.
        self._first_load = asyncio.Event()
        self.console = ConsoleRelay(layer=layer, publisher=self.publisher)
        self.qserver: QserverFollower | None = None
        if settings.qserver_devices:
            self.qserver = QserverFollower(client=qs_http_client(settings, timeout_s=settings.qserver_timeout_s),
                                           period_s=settings.qserver_devices_poll_s,
                                           reload=lambda: self._start_reload("", "qserver"))

    loaded = property(lambda self: self._first_load.is_set(), doc="The startup load has finished (/readyz).")

    async def run(self) -> None:
        """Serve until cancelled, then release every channel."""
        self._tasks = [
            asyncio.create_task(self.publisher.run(), name="bridge-publisher"),
            asyncio.create_task(self._housekeeping(), name="bridge-housekeeping"),
            asyncio.create_task(self._device_states(), name="bridge-device-states"),
        ]
        if self.qserver is not None:
            self._tasks.append(asyncio.create_task(self._follow_qserver(), name="bridge-qserver-devices"))
        watchdog = loop_watchdog.watch(asyncio.get_running_loop(), threading.current_thread(), "bridge")
        await status_attach(self._layer, self, "bridge")
        self.started.set()
        metrics.bridge_running(self)
        if self._settings.load_devices_on_start:
            self._start_reload("", "startup")  # devices load when the bridge starts, as in ophyd-websocket
        else:
            self._first_load.set()
        try:
            await serve_channel(self._commands, self.channel, self.handle, "bridge")
        finally:
            watchdog.stop()
            metrics.bridge_stopped(self)
            await status_detach(self)
            await self._shutdown()

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        hub = str(message.get("hub", ""))
        if kind in (m.SUBSCRIBE, m.RENEW):
            expiry = time.monotonic() + self._settings.lease_s
            for name in self._mine(_names(message), hub):
                entry = self._entry(name)
                entry.leases[hub] = expiry
                entry.idle_since = None
                if kind == m.SUBSCRIBE and hub:
                    entry.snapshot_to(hub)
        elif kind == m.RELEASE:
            for name in _names(message):
                entry = self.entries.get(name)
                if entry is not None:
                    entry.leases.pop(hub, None)
        elif kind == m.SET:
            self._start_set(message)
        elif kind == m.RELOAD:
            self._start_reload(str(message.get("hub", "")), str(message.get("request", "")))
        elif kind == m.DESCRIBE:
            self._start_describe(message)
        elif kind == m.STOP:
            self._start_stop(message)
        elif kind in (m.CONSOLE_WATCH, m.CONSOLE_REPLAY):
            if self.shard == 0:  # one console reader for the deployment
                self.console.handle(message)
            else:
                log.warning("console command %r sent to bridge shard %d; only shard 0 reads the console",
                            kind, self.shard)
        else:
            log.warning("unknown bridge command %r", kind)

    def owns(self, name: str) -> bool:
        """Whether this shard serves ``name`` (a PV, or a topic of a device it owns)."""
        return self.shards == 1 or shards.shard_of(name, self.shards) == self.shard

    def owns_device(self, device: str) -> bool:
        """Whether this shard holds ``device``'s ophyd object (channel_layer/shards.py)."""
        return shards.device_shard(device, self.shards) == self.shard

    def _mine(self, names: list[str], hub: str) -> list[str]:
        """The names this shard owns; others are refused (a server with another
        OAS_BRIDGE_SHARDS would otherwise open a second CA channel for them)."""
        if self.shards == 1:
            return names
        mine = [n for n in names if self.owns(n)]
        if len(mine) != len(names):
            log.warning("bridge shard %d/%d refused %d names it does not own from %s (is OAS_BRIDGE_SHARDS=%d "
                        "on every server?)", self.shard, self.shards, len(names) - len(mine), hub, self.shards)
        return mine

    def _entry(self, name: str) -> PvEntry:
        entry = self.entries.get(name)
        if entry is None:
            loop = asyncio.get_running_loop()
            s = self._settings
            factory = (self._device_source if parse_device_topic(name) else
                       self._pva_factory if name.startswith(PVA_PREFIX) else self._source_factory)
            entry = PvEntry(name, loop=loop, publisher=self.publisher,
                            source_factory=factory,
                            scalar_rate_hz=s.scalar_rate_hz, array_rate_hz=s.array_rate_hz,
                            connect_timeout_s=s.connect_timeout_s, executor=self._executor)
            self.entries[name] = entry
            # New CA channels open together in one executor job (sources/batch_calls.py);
            # device and PVA sources may block (ophyd creates lazy components): a job each.
            opening = (batcher_for(loop, self._executor).call(entry.source.open) if factory is self._source_factory
                       else loop.run_in_executor(self._executor, entry.source.open))
            opening.add_done_callback(lambda done, name=name: _report_open(name, done))
            log.info("opened channel for %s", name, extra={"pv": name})
        return entry

    def _device_source(self, name: str, loop: asyncio.AbstractEventLoop, sink: Any) -> Any:
        return device_source(self.plans, name, loop, sink)

    def _start_describe(self, message: dict[str, Any]) -> None:
        """Answer which streams each named device has (computed off the loop: ophyd may
        create lazy components, which opens CA channels)."""
        hub, request = str(message.get("hub", "")), str(message.get("request", ""))
        names = [n for n in message.get("devices") or [] if isinstance(n, str)]
        if not hub:
            return
        # Planning may open a device's lazy components: only the owner's objects are touched.
        names = [n for n in names if self.owns_device(n)]

        def describe() -> dict[str, Any]:
            plans = {n: self.plans.plan(n) for n in names}
            return {"devices": {n: (p.as_dict() if p else None) for n, p in plans.items()},
                    "known": self.registry.names()}

        async def run() -> None:
            await self._first_load.wait()
            async with self._reload_lock:  # a reload in progress: describe what it installs
                pass
            try:
                outcome = await asyncio.get_running_loop().run_in_executor(self._executor, describe)
            except Exception as exc:  # noqa: BLE001 - report, never crash the bridge
                log.exception("describing devices failed")
                outcome = {"status": "error", "error": repr(exc), "devices": {}, "known": self.registry.names()}
            self.publisher.to_channel((hub, "reply", request), hub,
                                      {"type": m.REPLY, "request": request, "outcome": outcome})

        self._track(asyncio.create_task(run()))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._sets.add(task)
        task.add_done_callback(self._sets.discard)

    async def devices_reloaded(self) -> None:
        """After a reload, point every device topic at the object the registry now holds."""
        loop = asyncio.get_running_loop()
        topics = [n for n in self.entries if parse_device_topic(n)]

        def stale() -> list[str]:
            out = []
            for topic in topics:
                entry = self.entries.get(topic)
                found = self.plans.target(topic)
                now = None if isinstance(found, str) else found[0]
                if entry is not None and getattr(entry.source, "obj", None) is not now:
                    out.append(topic)
            return out

        for topic in await loop.run_in_executor(self._executor, stale):
            old = self.entries.pop(topic, None)
            if old is None:
                continue
            old.close()
            await loop.run_in_executor(self._executor, old.source.close)
            fresh = self._entry(topic)
            fresh.leases.update(old.leases)
            log.info("rebound %s to the reloaded device", topic, extra={"pv": topic})
        self.publisher.to_group(("registry",), m.REGISTRY_GROUP,
                                {"type": m.DEVICES_RELOADED, "devices": self.registry.names()})

    def _start_stop(self, message: dict[str, Any]) -> None:
        """Stop the positioner behind a device topic (off the loop: ophyd writes STOP)."""
        hub, request, name = str(message.get("hub", "")), str(message.get("request", "")), message.get("pv")
        if not hub or not isinstance(name, str):
            return
        entry = self.entries.get(name)
        stop = getattr(entry.source, "stop", None) if entry is not None else None

        async def run() -> None:
            if stop is None:
                outcome = SetOutcome("bad_field", f"{name} is not a positioner that is being watched; nothing to stop")
            else:
                try:
                    await asyncio.get_running_loop().run_in_executor(self._executor, stop)
                    outcome = SetOutcome("done", "Stopped")
                except Exception as exc:  # noqa: BLE001 - report, never crash the bridge
                    outcome = SetOutcome("ioc_refused", f"Stopping failed: {exc}")
            self.publisher.to_channel((hub, "reply", request), hub, _reply(request, outcome))

        self._track(asyncio.create_task(run()))

    def _start_set(self, message: dict[str, Any]) -> None:
        hub, request = str(message.get("hub", "")), str(message.get("request", ""))
        name = message.get("pv")
        if not isinstance(name, str) or not name or not hub:
            return
        if not self._mine([name], hub):
            outcome = SetOutcome("error", f"{name} belongs to another bridge shard than {self.shard}/{self.shards}")
            self.publisher.to_channel((hub, "reply", request), hub, _reply(request, outcome))
            return
        if len(self._sets) >= MAX_CONCURRENT_SETS:
            outcome = SetOutcome("busy", "The bridge has too many sets in progress; try again")
            self.publisher.to_channel((hub, "reply", request), hub, _reply(request, outcome))
            return
        timeout = float(message.get("timeout") or self._settings.set_timeout_s)
        entry = self._entry(name)
        entry.holds += 1
        entry.idle_since = None
        task = asyncio.create_task(self._run_set(entry, hub, request, message.get("value"), timeout))
        self._sets.add(task)
        task.add_done_callback(self._sets.discard)

    async def _run_set(self, entry: PvEntry, hub: str, request: str, value: Any, timeout: float) -> None:
        try:
            outcome = await perform_set(entry, value, timeout)
        except Exception as exc:  # noqa: BLE001 - report, never crash the bridge
            log.exception("set of %s failed", entry.name, extra={"pv": entry.name})
            outcome = SetOutcome("error", f"Unexpected error setting {entry.name}: {exc}")
        finally:
            entry.holds -= 1
        self.publisher.to_channel((hub, "reply", request), hub, _reply(request, outcome))

    def _start_reload(self, hub: str, request: str) -> asyncio.Task[None]:
        """Reload the device registry in a thread; one reload at a time, replies in order."""
        async def run() -> None:
            async with self._reload_lock:
                try:
                    outcome = await asyncio.to_thread(registry_reload, self.registry)
                except Exception as exc:  # noqa: BLE001 - report, never crash the bridge
                    log.exception("device reload failed")
                    outcome = {"status": "error", "errors": {"reload": repr(exc)}, "devices": self.registry.names()}
                if self.qserver is not None:
                    self.qserver.reloaded(outcome)
                self._reloads += 1
                try:
                    await self.devices_reloaded()
                except Exception:  # noqa: BLE001 - subscribers stay on the old objects
                    log.exception("rebinding device subscriptions after reload failed")
            if not self._first_load.is_set():
                _freeze_startup_objects()
            self._first_load.set()
            if hub:
                self.publisher.to_channel((hub, "reply", request), hub,
                                          {"type": m.REPLY, "request": request, "outcome": outcome})

        task = asyncio.create_task(run())
        self._track(task)
        return task

    async def _follow_qserver(self) -> None:
        """Reload when the Queue Server's devices change (after the startup load)."""
        assert self.qserver is not None
        await self._first_load.wait()
        await self.qserver.run()

    async def _device_states(self) -> None:
        """Keep the admin's device list showing each device's connection state."""
        loop = asyncio.get_running_loop()
        written: dict[str, bool] = {}
        seen_reloads = self._reloads
        while True:
            await asyncio.sleep(self._settings.device_state_period_s)
            if seen_reloads != self._reloads:  # a reload rewrote the rows: write every state again
                seen_reloads, written = self._reloads, {}
            if not self.registry.names():
                continue
            try:
                states = await loop.run_in_executor(self._executor, device_states, self.registry, self.owns_device)
                if self._reload_lock.locked():
                    continue  # the reload rewrites the rows; write after it
                written = await asyncio.to_thread(device_states_record, states=states, previous=written)
            except Exception:  # noqa: BLE001 - retried next period; the database may be away
                log.exception("recording device connection states failed")
                written = {}

    async def _housekeeping(self) -> None:
        """Release PVs nobody has wanted for the grace period."""
        loop = asyncio.get_running_loop()
        grace = self._settings.release_grace_s
        while True:
            await asyncio.sleep(min(1.0, max(grace / 4, 0.05)))
            now = time.monotonic()
            for name, entry in list(self.entries.items()):
                if not entry.is_idle(now):
                    entry.idle_since = None
                    continue
                if entry.idle_since is None:
                    entry.idle_since = now
                elif now - entry.idle_since >= grace:
                    del self.entries[name]
                    entry.close()
                    await loop.run_in_executor(self._executor, entry.source.close)
                    log.info("released channel for %s", name, extra={"pv": name})

    async def _shutdown(self) -> None:
        for task in [*self._tasks, *self._sets]:
            task.cancel()
        await self.console.stop()
        loop = asyncio.get_running_loop()
        for entry in self.entries.values():
            entry.close()
            await loop.run_in_executor(self._executor, entry.source.close)
        self.entries.clear()


def _freeze_startup_objects() -> None:
    """Keep the objects made while starting (Django, ophyd, the devices) out of garbage
    collection: at 200 clients a full collection of ~180,000 objects paused the server for
    ~100 ms every ~10 s (bench/README.md, D2)."""
    gc.collect()
    gc.freeze()


def _names(message: dict[str, Any]) -> list[str]:
    """The names of an interest command; ones no CA client could search for are dropped
    (clients validate names; this keeps a faulty worker from feeding libca garbage)."""
    names = message.get("pvs")
    if not isinstance(names, list):
        return []
    good = [n for n in names if isinstance(n, str) and (parse_device_topic(n) or _is_pv_topic(n))]
    if len(good) != len(names):
        log.warning("ignored %d invalid names from %s", len(names) - len(good), message.get("hub"))
    return good


def _is_pv_topic(name: str) -> bool:
    """A PV topic as hubs make them (``ca://X`` is spelled ``X``; pvnames.py)."""
    try:
        return name_problem(name, 4096) is None and topic_of(name) == name
    except PvNameError:
        return False


def pva_source(topic: str, loop: asyncio.AbstractEventLoop, sink: Any) -> Any:
    """The PV Access channel of a ``pva://`` topic (p4p is imported on first use only)."""
    from devices.sources.pva_source import PvaSource

    return PvaSource(source_of(topic).name, loop, sink)


def _report_open(name: str, done: Any) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("opening the channel for %r failed: %r", name, done.exception(), extra={"pv": name})


def _reply(request: str, outcome: SetOutcome) -> dict[str, Any]:
    return {"type": m.REPLY, "request": request, "outcome": outcome.as_dict()}
