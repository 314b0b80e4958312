"""The bridge's side of the console: one ZMQ subscription for the whole deployment.

The relay reads the Queue Server's publisher (reader.py), numbers each console entry into a
ring (log.py), sends new entries to the ``qs.console`` group that every interested hub joins,
tracks whether the Queue Server is there (TCP connection and its ~1 s heartbeat), and
answers replay requests ("what came after entry N?") from the ring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from devices.channel_layer import messages as m
from ophydsite.settings.oas import OasSettings

from .log import ConsoleLog
from .reader import Event, ZmqConsoleReader

log = logging.getLogger(__name__)

BATCH = 500  # entries per group message
REPLAY_MAX = 2000  # entries per replay answer; a client pages with the last seq it got

ReaderFactory = Callable[[str, Callable[[list[Event]], None]], Any]


def _live_settings() -> OasSettings:
    from django.conf import settings

    return settings.OAS


def console_address(oas: OasSettings) -> str:
    return f"tcp://{oas.zmq_host}:{oas.zmq_port}"


class ConsoleRelay:
    """Started by the first hub that wants the console; runs until the bridge stops."""

    def __init__(self, *, layer: Any, publisher: Any, settings_now: Callable[[], OasSettings] = _live_settings,
                 reader_factory: ReaderFactory = ZmqConsoleReader) -> None:
        """``settings_now``: the settings as they are now (read at each watch, so the console's
        address and heartbeat timeout follow them without a bridge restart)."""
        self._layer = layer
        self._publisher = publisher
        self._settings_now = settings_now
        self.address = console_address(settings_now())
        self.log = ConsoleLog(settings_now().qs_console_buffer)
        self._reader_factory = reader_factory
        self._reader: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._tcp = False
        self._last_beat: float | None = None
        self._state_version = 0
        self.state = self._new_state(False, self.address, f"connecting to the Queue Server console at {self.address}")

    def _new_state(self, connected: bool, source: str, message: str) -> dict[str, Any]:
        """A source state numbered after every earlier one. A replay answer carries the state of
        its moment but can reach a session after a later group state; the number lets the
        session keep the newer. Nanoseconds of the clock, so a restarted bridge numbers on."""
        self._state_version = max(time.time_ns(), self._state_version + 1)
        return {"connected": connected, "source": source, "message": message, "version": self._state_version}

    # --- commands from hubs -----------------------------------------------------------------

    @property
    def _heartbeat_timeout(self) -> float:
        return self._settings_now().qs_console_heartbeat_s

    def handle(self, message: dict[str, Any]) -> None:
        address = console_address(self._settings_now())
        if self._reader is not None and address != self.address:
            self._retarget(address)
        self.address = address
        self.ensure_started()
        if message.get("type") != m.CONSOLE_REPLAY:
            return
        hub, request = str(message.get("hub", "")), str(message.get("request", ""))
        if hub:
            self._publisher.to_channel((hub, "reply", request), hub,
                                       {"type": m.REPLY, "request": request, "outcome": self.replay(message)})

    def replay(self, message: dict[str, Any]) -> dict[str, Any]:
        after, last = message.get("after"), message.get("last")
        limit = REPLAY_MAX
        if isinstance(after, int) and not isinstance(after, bool):
            entries, complete = self.log.after(after, limit)
        else:
            count = last if isinstance(last, int) and not isinstance(last, bool) else 0
            entries, complete = self.log.last(min(max(count, 0), limit)), True
        return {"entries": [e.as_dict() for e in entries], "complete": complete, "state": self.state,
                "last_seq": self.log.last_seq}

    def ensure_started(self) -> None:
        if self._reader is not None:
            return
        loop = asyncio.get_running_loop()

        reader: Any = None

        def emit(events: list[Event]) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._on_events, events, reader)

        reader = self._reader = self._reader_factory(self.address, emit)
        self._reader.start()
        self._tasks = [asyncio.create_task(self._send_loop(), name="qs-console-send"),
                       asyncio.create_task(self._liveness_loop(), name="qs-console-liveness")]
        log.info("relaying the Queue Server console from %s", self.address)

    def _retarget(self, address: str) -> None:
        """The configured address changed: read the new one (the ring and its numbers stay)."""
        old, self._reader = self._reader, None
        for task in self._tasks:
            task.cancel()
        asyncio.get_running_loop().run_in_executor(None, old.stop)
        self._tcp, self._last_beat = False, None
        self.state = self._new_state(False, address, f"connecting to the Queue Server console at {address}")
        self._publisher.to_group(("qs-console", "state"), m.CONSOLE_GROUP, {"type": m.CONSOLE_STATE, **self.state})
        log.info("Queue Server console address changed from %s to %s", self.address, address)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._reader is not None:
            await asyncio.to_thread(self._reader.stop)
            self._reader = None

    # --- from the reader thread (via the loop) ------------------------------------------------

    def _on_events(self, events: list[Event], reader: Any) -> None:
        if reader is not self._reader:
            return  # a reader stopped after a change of address
        for kind, data in events:
            if kind == "line":
                stamp, text = data
                entry = self.log.append(stamp if stamp is not None else time.time(), text)
                self._pending.append(entry.as_dict())
            elif kind == "heartbeat":
                self._last_beat = time.monotonic()
            elif kind == "tcp":
                self._tcp = bool(data)
                if not self._tcp:
                    self._last_beat = None
        if len(self._pending) > self.log.size:
            del self._pending[: len(self._pending) - self.log.size]
        if self._pending:
            self._wake.set()
        self._update_state()

    def _update_state(self) -> None:
        now = time.monotonic()
        stale = self._last_beat is not None and now - self._last_beat > self._heartbeat_timeout
        if self._tcp and not stale:
            connected, why = True, f"receiving the Queue Server console from {self.address}"
        elif self._tcp:
            connected, why = False, (f"the Queue Server at {self.address} sent no heartbeat for "
                                     f"{self._heartbeat_timeout:g} s")
        else:
            connected, why = False, f"the Queue Server console at {self.address} is not reachable; retrying"
        if connected != self.state["connected"]:
            self.state = self._new_state(connected, self.address, why)
            log.info("Queue Server console: %s", why)
            self._publisher.to_group(("qs-console", "state"), m.CONSOLE_GROUP, {"type": m.CONSOLE_STATE, **self.state})

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self._heartbeat_timeout / 4, 0.1))
            self._update_state()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                try:
                    await self._layer.group_send(m.CONSOLE_GROUP, {"type": m.CONSOLE_LINES, "entries": batch})
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - clients replay from the ring after a gap
                    log.exception("sending Queue Server console lines failed")
