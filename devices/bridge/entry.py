"""One PV inside the bridge: its latest state, the rate cap, and the messages it publishes.

Everything here runs on the bridge's event loop. The CA source hands events in through the
SourceSink methods; values are published at most ``rate`` times a second (latest wins),
while connection, access-right and alarm changes go out at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

from devices.channel_layer.jsonsafe import scalar_json, value_json
from devices.metrics.instruments import UPSTREAM, protocol_of
from devices.sources.batch_calls import batcher_for
from devices.sources.source import UNSUPPORTED, ChannelInfo, PropertyEvent, Source, SourceSink, ValueEvent

from .publisher import Publisher
from .ratecap import RateCap

log = logging.getLogger(__name__)

# Arrays longer than this are JSON-encoded on a worker thread (~2 ms per 10k doubles).
ENCODE_OFF_LOOP = 20000
REOPEN_FIRST_S = 0.5
REOPEN_MAX_S = 8.0
# How long a connecting channel waits for its control metadata before publishing without it.
PROPERTY_WAIT_S = 2.0
# A connected channel whose metadata read came back empty is asked again after these delays.
INFO_RETRY_FIRST_S = 0.5
INFO_RETRY_MAX_S = 8.0

SourceFactory = Callable[[str, asyncio.AbstractEventLoop, SourceSink], Source]


class PvEntry:
    """Bridge-side state of one PV, shared by every client of every worker process."""

    def __init__(self, name: str, *, loop: asyncio.AbstractEventLoop, publisher: Publisher,
                 source_factory: SourceFactory, scalar_rate_hz: float, array_rate_hz: float,
                 connect_timeout_s: float, executor: Executor | None = None) -> None:
        self.name = name
        self.protocol = protocol_of(name)  # the label of its upstream updates (metrics)
        self.executor = executor  # where calls into the source run (None: the loop's default)
        self._loop = loop
        self._publisher = publisher
        self._scalar_interval = 1.0 / scalar_rate_hz if scalar_rate_hz > 0 else 0.0
        self._array_interval = 1.0 / array_rate_hz if array_rate_hz > 0 else 0.0
        self.connected = False
        self.ever_connected = False
        self.announced = False  # a state (connected or not) has been published
        self.access: tuple[bool, bool] = (False, False)
        self.info: ChannelInfo | None = None
        self.last: ValueEvent | None = None
        self.fresh = False  # `last` arrived since the latest (re)connection
        self.leases: dict[str, float] = {}
        self.holds = 0
        self.idle_since: float | None = None
        self.ready = asyncio.Event()  # connected and metadata known (awaited by sets)
        self._ready = False  # the same as a plain flag: read on every event, Event.is_set is a call
        self._cap = RateCap(loop.time())
        self._timer: asyncio.TimerHandle | None = None
        self._info_task: asyncio.Task[None] | None = None
        self._info_retry: asyncio.TimerHandle | None = None
        self._info_delay = INFO_RETRY_FIRST_S
        self._closed = False
        self.source = source_factory(name, loop, self)
        self._announce_timer = loop.call_later(connect_timeout_s, self._announce_unconnected)
        self._reopen_timer: asyncio.TimerHandle | None = None
        # The JSON text of the newest value, encoded once and reused for every send.
        self._encoded_for: ValueEvent | None = None
        self._encoded_text = "null"
        self._encoding = False
        self._reopen_delay = REOPEN_FIRST_S
        self._value_waiters: list[asyncio.Future[None]] = []
        self._property: PropertyEvent | None = None  # the newest, also before the entry is ready
        self._property_waiters: list[asyncio.Future[None]] = []

    # --- SourceSink: called on the loop via call_soon_threadsafe -------------------------

    def source_connection(self, connected: bool) -> None:
        if self._closed:
            return
        self.connected = connected
        if connected:
            self._cancel_reopen()
            self._reopen_delay = REOPEN_FIRST_S
            self._info_delay = INFO_RETRY_FIRST_S
            self._info_task = self._loop.create_task(self._fetch_info())
        else:
            self.ready.clear()
            self._ready = False
            self.fresh = False
            self._cancel_timer()
            self._publish_state()
            self._schedule_reopen()

    # --- reconnecting faster than libca -------------------------------------------------------

    def _schedule_reopen(self) -> None:
        """libca re-searches a lost channel only every 10 s; a fresh channel searches at once."""
        if self._reopen_timer is None and not self._closed:
            self._reopen_timer = self._loop.call_later(self._reopen_delay, self._reopen)
            self._reopen_delay = min(self._reopen_delay * 2, REOPEN_MAX_S)

    def _cancel_reopen(self) -> None:
        if self._reopen_timer is not None:
            self._reopen_timer.cancel()
            self._reopen_timer = None

    def _reopen(self) -> None:
        self._reopen_timer = None
        if self._closed or self.connected:
            return
        reopen = getattr(self.source, "reopen", None)
        if reopen is None:
            return
        future = self._loop.run_in_executor(self.executor, reopen)
        future.add_done_callback(lambda _: None if self.connected else self._schedule_reopen())

    def source_access(self, access: tuple[bool, bool]) -> None:
        if self._closed or access == self.access:
            return
        self.access = access
        if self._ready:
            self._publish_state()

    def source_property(self, event: PropertyEvent) -> None:
        """Control metadata from the IOC; publish it when it differs from what clients have.

        Compared here, without a CA round trip: caproto IOCs send this event with every value
        update (the bench measured a metadata fetch per update costing a full core at 1000/s).
        """
        if self._closed:
            return
        self._property = event
        for waiter in self._property_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._property_waiters.clear()
        if not self._ready or self.info is None:
            return  # a connection in progress takes it from self._property
        updated = _with_property(self.info, event)
        if updated != self.info:
            self.info = updated
            self._publisher.to_audience((self.name, "meta"), self, self.meta_message())

    def source_value(self, event: ValueEvent) -> None:
        """Runs for every monitor event of every PV: kept to plain attribute reads."""
        if self._closed:
            return
        UPSTREAM[self.protocol] += 1
        previous = self.last
        first = not self.fresh
        self.last = event
        self.fresh = True
        if self._value_waiters:
            for waiter in self._value_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._value_waiters.clear()
        if not self._ready:
            return  # published together with the metadata once it is known
        if first or previous is None or previous[2] != event[2] or previous[3] != event[3]:
            self._publish_state()  # first value, or the alarm (severity, status) changed
        else:
            self._publish_value_capped()

    async def next_value(self, seen: ValueEvent | None, timeout: float) -> None:
        """Wait until a value newer than ``seen`` arrived (at most ``timeout`` seconds)."""
        if self.last is not seen:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._value_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass

    # --- state published ------------------------------------------------------------------

    async def _fetch_info(self) -> None:
        try:
            info = None
            ready = getattr(self.source, "info_ready", None)  # sources/source.py, ReadyInfo
            if ready is not None:  # thousands connecting at once: one executor job for all
                info = await batcher_for(self._loop, self.executor).call(ready)
            if info is None:
                info = await self._loop.run_in_executor(self.executor, self.source.info, 5.0)
        except Exception:  # noqa: BLE001 - a bad channel must not break the bridge
            log.exception("reading metadata of %s", self.name, extra={"pv": self.name})
            info = None
        if info is not None and info.metadata_pending:
            info = await self._completed(info)
        if not self.connected or self._closed:
            return
        if info is None:
            self._retry_info()
            return
        changed = info != self.info or info.access != self.access
        was_ready = self._ready
        self.info = info
        self.access = info.access
        self.ever_connected = True
        self.ready.set()
        self._ready = True
        if was_ready:
            if changed:  # a property change while connected
                self._publisher.to_audience((self.name, "meta"), self, self.meta_message())
        elif self.fresh or info.kind == UNSUPPORTED:  # (an unsupported one never sends a value)
            self._publish_state()
        # otherwise the first value after (re)connecting publishes metadata and value together

    def _retry_info(self) -> None:
        """Connected, but the metadata did not come (a slow source, a failed read): ask again
        rather than stay connected-but-not-ready, which publishes nothing and fails every set."""
        if self._info_retry is not None:
            return
        level = logging.WARNING if self._info_delay == INFO_RETRY_FIRST_S else logging.DEBUG
        log.log(level, "%s is connected but its metadata did not come; asking again in %g s",
                self.name, self._info_delay, extra={"pv": self.name})

        def again() -> None:
            self._info_retry = None
            if self.connected and not self._ready and not self._closed:
                self._info_task = self._loop.create_task(self._fetch_info())

        self._info_retry = self._loop.call_later(self._info_delay, again)
        self._info_delay = min(self._info_delay * 2, INFO_RETRY_MAX_S)

    async def _completed(self, info: ChannelInfo) -> ChannelInfo:
        """``info`` with the control fields of the source's first property event, waited for
        here so thousands of channels connecting at once wait together, not a thread each."""
        if self._property is None:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._property_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, PROPERTY_WAIT_S)
            except TimeoutError:
                log.warning("no control metadata from %s within %g s", self.name, PROPERTY_WAIT_S,
                            extra={"pv": self.name})
        info = replace(info, metadata_pending=False)
        return info if self._property is None else _with_property(info, self._property)

    def _announce_unconnected(self) -> None:
        """A PV that never connects is reported as such, then kept searching. One that is
        connected and waiting for its metadata is not: it publishes once it has them (a
        clean-clone run saw a connected char array reported as null, unconnected)."""
        if not self.announced and not self._closed and not self.connected:
            self._publish_state()

    def _publish_state(self) -> None:
        """Metadata and value now, bypassing the rate cap (connection, access, alarm)."""
        self._cancel_timer()
        self.announced = True
        self._publisher.to_audience((self.name, "meta"), self, self.meta_message())
        if self.last is not None or not self.connected:
            self._send_value()

    def _publish_value_capped(self) -> None:
        """Publish now if the token bucket allows, else once it refills (latest value then).

        A bucket rather than "one period since the last publish": a source updating at
        exactly the cap would otherwise be deferred by up to a period on every update.
        """
        if self._timer is not None:
            return  # a publish is already scheduled; it will take the latest value
        info = self.info
        interval = self._array_interval if info is not None and info.count > 1 else self._scalar_interval
        if interval <= 0:
            self._send_value()
            return
        now = self._loop.time()
        wait = self._cap.delay(now, interval)
        if wait <= 0.0:
            self._send_value()
        else:
            self._timer = self._loop.call_at(now + wait, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        if not self._closed and self._ready:
            self._publish_value_capped()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_value(self) -> None:
        event = self.last
        if (event is not None and type(event[0]) not in _SCALARS and self._encoded_for is not event
                and _size(event.value) > ENCODE_OFF_LOOP):
            self._encode_off_loop(event)
            return
        self._publisher.to_audience((self.name, "value"), self, self.value_message())

    def _encode_off_loop(self, event: ValueEvent) -> None:
        """Big arrays are turned into JSON on a worker thread so the loop keeps serving."""
        if self._encoding:
            return  # the running encode publishes, then picks up the newest value
        self._encoding = True
        is_char = self.info is not None and self.info.kind == "char"
        future = self._loop.run_in_executor(None, lambda: value_json(event.value, char_array=is_char))

        def done(f: asyncio.Future[str]) -> None:
            self._encoding = False
            if self._closed or f.cancelled() or f.exception() is not None:
                return
            self._encoded_for, self._encoded_text = event, f.result()
            self._publisher.to_audience((self.name, "value"), self, self.value_message())
            if self.last is not event and self._ready:
                self._publish_value_capped()

        future.add_done_callback(done)

    def _value_text(self, event: ValueEvent | None) -> str:
        if event is None:
            return "null"
        if self._encoded_for is not event:
            is_char = self.info is not None and self.info.kind == "char"
            self._encoded_for, self._encoded_text = event, scalar_json(event[0], char_array=is_char)
        return self._encoded_text

    def value_message(self) -> dict[str, Any]:
        event = self.last
        if event is None:
            value, count, timestamp, severity = "null", 1, None, None
        else:
            value, timestamp, severity = self._value_text(event), event[1], event[2]
            count = 1 if type(event[0]) in _SCALARS else _size(event[0])
        access = self.access
        return {
            "type": "pv.value",
            "pv": self.name,
            "value": value,
            "count": count,
            "timestamp": timestamp,
            "severity": severity,
            "connected": self.connected and self._ready,
            "read_access": access[0],
            "write_access": access[1],
        }

    def meta_message(self) -> dict[str, Any]:
        info = self.info
        event = self.last
        return {
            "type": "pv.meta",
            "pv": self.name,
            "meta": {
                "connected": self.connected and self._ready,
                "read_access": self.access[0],
                "write_access": self.access[1],
                "timestamp": event.timestamp if event else None,
                "status": event.status if event else None,
                "severity": event.severity if event else None,
                "precision": info.precision if info else None,
                "setpoint_timestamp": None,
                "setpoint_status": None,
                "setpoint_severity": None,
                "lower_ctrl_limit": info.lower_ctrl_limit if info else None,
                "upper_ctrl_limit": info.upper_ctrl_limit if info else None,
                "units": info.units if info else None,
                "enum_strs": list(info.enum_strs) if info and info.enum_strs else None,
                "setpoint_precision": None,
                **(_unsupported(info) if info is not None and info.kind == UNSUPPORTED else {}),
            },
        }

    def snapshot_to(self, channel: str) -> None:
        """Send the current state to one hub that just joined (it may have missed it)."""
        if not self.announced:
            return
        self._publisher.snapshot(channel, self.name, self)

    # --- interest -----------------------------------------------------------------------

    def is_idle(self, now: float) -> bool:
        for hub, expiry in list(self.leases.items()):
            if expiry < now:
                del self.leases[hub]
        return not self.leases and self.holds == 0

    def close(self) -> None:
        """Stop handling events; the caller releases the source off the loop."""
        self._closed = True
        self._cancel_timer()
        self._cancel_reopen()
        self._announce_timer.cancel()
        if self._info_task is not None:
            self._info_task.cancel()
        if self._info_retry is not None:
            self._info_retry.cancel()


def _with_property(info: ChannelInfo, event: PropertyEvent) -> ChannelInfo:
    """``info`` with the control fields a property event carries (enum strings only for enums)."""
    return replace(info, units=event.units, precision=event.precision,
                   lower_ctrl_limit=event.lower_ctrl_limit, upper_ctrl_limit=event.upper_ctrl_limit,
                   enum_strs=event.enum_strs if info.kind == "enum" else info.enum_strs)


_SCALARS = frozenset({float, int, str, bool})


def _size(value: Any) -> int:
    return len(value) if hasattr(value, "__len__") and not isinstance(value, str) else 1


def _unsupported(info: ChannelInfo) -> dict[str, Any]:
    """What a client learns of a channel whose type the server cannot map (a PVA structure
    that is no normative type): it is there, and why no values come."""
    return {"error": str(info.extra.get("error") or "unsupported channel type"), "code": "unsupported_type"}
