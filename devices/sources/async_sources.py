"""ophyd-async signals and movables as bridge Sources, so they share the PV machinery.

All ophyd-async work (connect, subscribe, set, stop) runs on the runtime's loop
(async_runtime.py); what comes back (readings, set outcomes) is only handed to the bridge's
loop through its inbox, as CaSource does. Metadata comes from the signal's datakey
(``describe()``): units, precision, control limits (else display limits) and choices, which
map to a CA-like enum (the value as an index into ``enum_strs``).

ophyd-async reports no disconnects of its signals (its aioca and p4p monitors are made without
``notify_disconnect``), so each source of a CA or PVA signal also keeps a connection watch
(async_connection.py): the sink hears ``source_connection(False)`` when the IOC or server goes
away and ``True`` once it is back, when ophyd-async's own monitor resumes the values. Soft
signals cannot disconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from ophyd_async.core import SignalR, SignalW

from .async_connection import ConnectionWatch, watch_connection
from .async_runtime import AsyncRuntime, describe_error, runtime
from .inbox import inbox_for
from .source import ChannelInfo, PropertyEvent, PutCallback, SourceSink, ValueEvent

log = logging.getLogger(__name__)

MOVE_START_S = 1.0  # how long a completed put may take to show as a move (DMOV dropping)
AT_TARGET = 1e-9  # a readback this close to the target: nothing to move

# Connecting again is free for a device that connected (ophyd-async caches it); this bounds
# the first connect of one that never did.
OPEN_CONNECT_TIMEOUT_S = 10.0
INVALID = 3  # EPICS alarm severity; ophyd-async reports it (and anything above MAJOR) as -1


class AsyncSignalSource:
    """One ophyd-async signal behind the bridge's Source interface."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink, signal: Any,
                 *, rt: AsyncRuntime | None = None, writable: bool | None = None) -> None:
        """``writable``: override whether sets are allowed (a movable's readback is set through
        its device although the readback signal itself is read-only)."""
        self.name = name
        self._inbox = inbox_for(loop)
        self._sink = sink
        self._signal = signal
        self._rt = rt or runtime()
        self._writable = isinstance(signal, SignalW) if writable is None else writable
        self._ready: concurrent.futures.Future[ChannelInfo] | None = None
        self._info: ChannelInfo | None = None  # known once connected and described
        self._choices: tuple[str, ...] | None = None
        self._subscribed = False
        self._watch: ConnectionWatch | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.error: str | None = None  # why the signal did not connect

    # --- opening: connect, describe, subscribe (on the runtime's loop) -------------------

    def open(self) -> None:
        """Start connecting; ``info`` waits for it. Does not block."""
        with self._lock:
            if self._ready is None and not self._closed:
                self._ready = self._rt.submit(self._open())

    async def _open(self) -> ChannelInfo:
        try:
            await self._signal.connect(timeout=OPEN_CONNECT_TIMEOUT_S)
            datakey = (await self._signal.describe())[self._signal.name] if isinstance(
                self._signal, SignalR) else {}
        except Exception as exc:  # noqa: BLE001 - the reason is reported, the bridge goes on
            self.error = describe_error(self.name, exc)
            raise
        info = await self._refine(info_from_datakey(datakey, writable=self._writable))
        self._choices = info.enum_strs
        self._info = info  # ``info`` answers from here on: the connection is handed off next
        if self._closed:
            return info
        self._hand_off(self._sink.source_connection, True)
        self._hand_off(self._sink.source_access, info.access)
        self._hand_off(self._sink.source_property, property_event(info))
        if isinstance(self._signal, SignalR):
            self._signal.subscribe_reading(self._on_reading)  # may call back at once
            self._subscribed = True
        await self._watch_connection()
        return info

    async def _watch_connection(self) -> None:
        """Connection changes from now on (CA and PVA signals); a failure only loses them."""
        try:
            watch = await watch_connection(self._signal.source, self._on_connection)
        except Exception:  # noqa: BLE001 - values still stream without it
            log.exception("watching the connection of %s", self.name)
            return
        if watch is not None and self._closed:  # closed meanwhile: _unsubscribe may have run
            watch.close()
            return
        self._watch = watch

    def _on_connection(self, connected: bool) -> None:
        """Runs on the ophyd-async runtime's loop. Must not block."""
        self._hand_off(self._sink.source_connection, connected)

    async def _refine(self, info: ChannelInfo) -> ChannelInfo:
        """Hook: facts the signal's own datakey does not carry."""
        return info

    def _hand_off(self, fn: Callable[[Any], None], arg: Any) -> None:
        self._inbox.post(fn, arg)  # one loop wake-up per batch of events (inbox.py)

    def _on_reading(self, readings: Mapping[str, Any]) -> None:
        """Runs on the ophyd-async runtime's loop. Must not block."""
        for reading in readings.values():
            self._hand_off(self._sink.source_value, value_event(reading, self._choices))

    def info(self, timeout: float) -> ChannelInfo | None:
        """Known as soon as the signal is described, before the subscription and connection
        watch are made: the bridge asks when it hears ``source_connection(True)``, which
        comes before those, and must not wait on them (a busy runtime loop made it wait past
        its timeout, and the PV then never became ready)."""
        if self._info is not None:
            return self._info
        ready = self._ready
        if ready is None:
            return None
        try:
            return ready.result(timeout)
        except concurrent.futures.TimeoutError:
            return None
        except Exception:  # noqa: BLE001 - connect failed: ``error`` says why
            return None

    # --- set --------------------------------------------------------------------------------

    def put(self, value: Any, done: PutCallback) -> None:
        """``signal.set(value)`` and its status as ``done(ok, message)``; never raises."""
        if not isinstance(self._signal, SignalW):
            self._finish(done, False, f"{self.name} is read-only")
            return
        self._start(self._set(self._for_set(value)), done)

    async def _set(self, value: Any) -> None:
        """What ``SignalW.set`` does, minus its retry wrapper: a CA put the IOC refuses raises
        aioca's ``CANothing``, which is falsy, and the wrapper (stamina → tenacity → a
        ``concurrent.futures.Future``, whose ``result()`` tests ``if self._exception``) then
        reports success (ophyd-async 0.21.3, measured on the demo IOC's ``refuse``)."""
        backend = getattr(getattr(self._signal, "_connector", None), "backend", None)
        if backend is None or not callable(getattr(backend, "put", None)):
            await self._signal.set(value)
            return
        timeout = getattr(self._signal, "_timeout", None)
        try:
            await asyncio.wait_for(backend.put(value), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.name}: the write did not complete within {timeout:g} s") from None

    def _for_set(self, value: Any) -> Any:
        """An enum index (what CA clients and the bridge's checks send) as its choice."""
        choices = self._choices
        if choices and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
            return choices[value]
        return value

    def _start(self, coro: Any, done: PutCallback) -> None:
        try:
            future = self._rt.submit(coro)
        except Exception as exc:  # noqa: BLE001 - no loop to run it: report, never raise
            coro.close()
            self._finish(done, False, f"{self.name}: {exc}")
            return
        future.add_done_callback(lambda f: self._finish(done, *_outcome(f)))

    def _finish(self, done: PutCallback, ok: bool, message: str) -> None:
        """Runs on the runtime's loop (or the caller's thread). Must not block."""
        self._hand_off(_call_done, (done, ok, message))

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ready = self._ready
        if ready is None:
            return
        try:
            self._rt.submit(self._unsubscribe()).result(5.0)
        except Exception:  # noqa: BLE001 - releasing must never break the bridge
            log.exception("closing %s", self.name)

    async def _unsubscribe(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
        if self._subscribed:
            self._subscribed = False
            self._signal.clear_sub(self._on_reading)


class AsyncMovableSource(AsyncSignalSource):
    """A movable ophyd-async device (``Motor``, any ``StandardMovable``): its readback streams,
    a put moves the device with ``device.set`` and reports how the move ended."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink, device: Any,
                 *, rt: AsyncRuntime | None = None) -> None:
        super().__init__(name, loop, sink, readback_of(device), rt=rt, writable=True)
        self._device = device
        self._stops = 0  # stop requests so far: a move that saw one did not reach its target

    async def _open(self) -> ChannelInfo:
        try:
            await self._device.connect(timeout=OPEN_CONNECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - reported through ``error``
            self.error = describe_error(self.name, exc)
            raise
        return await super()._open()

    async def _refine(self, info: ChannelInfo) -> ChannelInfo:
        """A motor record's VAL carries the soft limits (LLM/HLM) as its control limits."""
        setpoint = setpoint_of(self._device)
        if not isinstance(setpoint, SignalR):
            return info
        try:
            key = (await setpoint.describe())[setpoint.name]
        except Exception:  # noqa: BLE001 - limits are optional
            return info
        limits = info_from_datakey(key, writable=True)
        if limits.lower_ctrl_limit is None and limits.upper_ctrl_limit is None:
            return info
        return replace(info, units=info.units or limits.units,
                       precision=info.precision if info.precision is not None else limits.precision,
                       lower_ctrl_limit=limits.lower_ctrl_limit, upper_ctrl_limit=limits.upper_ctrl_limit)

    def put(self, value: Any, done: PutCallback) -> None:
        self._start(self._move(value, self._stops), done)

    async def _move(self, value: Any, stops_before: int) -> None:
        await self._device.set(value)
        done_move = getattr(self._device, "motor_done_move", None)
        if isinstance(done_move, SignalR):
            # Some IOCs (caproto's motor) complete VAL's put before the move ends, and even
            # before DMOV drops: wait for the move to start (unless already there), then for
            # DMOV to say it ended. Reporting "done" on the first DMOV read answered a 300 deg
            # move at once (found by test_async_device_socket.py).
            loop = asyncio.get_running_loop()
            start_by = loop.time() + MOVE_START_S
            while (await done_move.get_value() and self._stops == stops_before and loop.time() < start_by
                   and not await self._at(value)):
                await asyncio.sleep(0.02)
            while not await done_move.get_value() and self._stops == stops_before:
                await asyncio.sleep(0.05)
        if self._stops != stops_before:
            where = await self._signal.get_value()
            raise RuntimeError(f"stopped at {where!r} before reaching {value!r}")

    async def _at(self, value: Any) -> bool:
        """Whether the readback already shows ``value`` (a move there never starts)."""
        try:
            return abs(float(await self._signal.get_value()) - float(value)) <= AT_TARGET
        except (TypeError, ValueError):
            return False

    def stop(self) -> None:
        """Halt a move in progress (``device.stop()``); TypeError if the device has none."""
        stop = getattr(self._device, "stop", None)
        if stop is None:
            raise TypeError(f"{self.name} cannot be stopped")
        self._stops += 1
        self._rt.submit(stop()).add_done_callback(_log_failure)


def async_source_for(name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink, obj: Any,
                     role: str) -> AsyncSignalSource:
    """The Source for one stream of an ophyd-async device (``role`` as in device_plan.Stream)."""
    if role == "readback":
        return AsyncMovableSource(name, loop, sink, obj)
    return AsyncSignalSource(name, loop, sink, obj)


# --- pure mappings ------------------------------------------------------------------------


def readback_of(device: Any) -> Any:
    """The signal that tells where a movable is."""
    for attr in ("user_readback", "readback"):
        signal = getattr(device, attr, None)
        if isinstance(signal, SignalR):
            return signal
    logic = getattr(device, "movable_logic", None)
    signal = getattr(logic, "readback", None)
    if isinstance(signal, SignalR):
        return signal
    raise TypeError(f"{device!r} has no readback signal")


def setpoint_of(device: Any) -> Any:
    for attr in ("user_setpoint", "setpoint"):
        signal = getattr(device, attr, None)
        if isinstance(signal, SignalW):
            return signal
    return None


_INT_CODES = "iub"


def info_from_datakey(datakey: Mapping[str, Any], *, writable: bool) -> ChannelInfo:
    """ChannelInfo from a bluesky datakey (what ``describe()`` gives for one signal)."""
    dtype = datakey.get("dtype", "number")
    shape = list(datakey.get("shape") or [])
    numpy_type = str(datakey.get("dtype_numpy") or "")
    code = numpy_type[1:2] if len(numpy_type) > 1 else ""
    choices = datakey.get("choices")
    if choices:
        kind = "enum"
    elif dtype in ("integer", "boolean"):
        kind = "int"
    elif dtype == "string":
        kind = "string"
    elif dtype == "array":
        kind = "int" if code in _INT_CODES else "string" if code in "SUO" else "float"
    else:
        kind = "int" if code in _INT_CODES else "float"
    limits = datakey.get("limits") or {}
    rng = limits.get("control") or limits.get("display") or {}
    low, high = rng.get("low"), rng.get("high")
    return ChannelInfo(
        kind=kind, count=int(shape[0]) if shape and shape[0] else 1,
        units=datakey.get("units") or None, precision=datakey.get("precision"),
        lower_ctrl_limit=_number(low), upper_ctrl_limit=_number(high),
        enum_strs=tuple(str(c) for c in choices) if choices else None,
        access=(True, writable), extra={"source": datakey.get("source", "")})


def property_event(info: ChannelInfo) -> PropertyEvent:
    return PropertyEvent(units=info.units, precision=info.precision, lower_ctrl_limit=info.lower_ctrl_limit,
                         upper_ctrl_limit=info.upper_ctrl_limit, enum_strs=info.enum_strs)


def value_event(reading: Mapping[str, Any], choices: tuple[str, ...] | None) -> ValueEvent:
    """A bluesky reading as the bridge's ValueEvent (enum choices as their index)."""
    value = reading.get("value")
    if isinstance(value, enum.Enum):
        value = value.value
    if choices and isinstance(value, str):
        value = choices.index(value) if value in choices else value
    elif isinstance(value, (bool, np.bool_)):
        value = int(value)
    elif isinstance(value, np.generic):
        value = value.item()
    severity = reading.get("alarm_severity")
    if isinstance(severity, int) and severity < 0:
        severity = INVALID
    stamp = reading.get("timestamp")
    return ValueEvent(value, stamp if stamp is not None else time.time(), severity, None)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN: no limit


def _outcome(future: concurrent.futures.Future[Any]) -> tuple[bool, str]:
    if future.cancelled():
        return False, "the set was cancelled"
    error = future.exception()
    if error is None:
        return True, ""
    text = str(error).strip() or type(error).__name__
    return False, text if type(error).__name__ in text else f"{type(error).__name__}: {text}"


def _call_done(args: tuple[PutCallback, bool, str]) -> None:
    done, ok, message = args
    done(ok, message)


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("stopping failed", exc_info=future.exception())
