"""An ophyd positioner as a bridge Source: its position streams, a set moves it.

Works for any ophyd ``PositionerBase`` (EpicsMotor, SoftPositioner, a pseudo axis): the
position comes from a motor's ``user_readback`` signal (with the IOC's timestamp) or else
the positioner's ``readback`` event, connection and alarms from the
metadata of its EPICS signals (if it has any), and limits, units and precision from the
positioner itself, so a motor's soft-limit change reaches clients and the set checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ophyd.signal import EpicsSignalBase
from ophyd.utils import DisconnectedError, LimitError

from .inbox import inbox_for
from .putcheck import PutRejected
from .source import ChannelInfo, PropertyEvent, PutCallback, SourceSink, ValueEvent

# Signals whose metadata tells a motor's connection, alarm and limits.
_WATCHED = ("user_readback", "user_setpoint")
FULL_CONNECTION_WAIT_S = 5.0


class PositionerSource:
    """One positioner of a registered device behind the Source interface."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink, positioner: Any) -> None:
        self.name = name
        self._loop = loop
        self._inbox = inbox_for(loop)
        self._sink = sink
        self._positioner = positioner
        self._watched = [s for s in (getattr(positioner, a, None) for a in _WATCHED)
                         if isinstance(s, EpicsSignalBase)]
        self._subs: list[tuple[Any, int]] = []
        self._alarm: tuple[Any, Any] = (None, None)
        self._connected: bool | None = None
        self._stops = 0  # stop requests so far: a move that saw one did not reach its target

    def open(self) -> None:
        for signal in self._watched:
            self._subs.append((signal, signal.subscribe(self._on_meta, event_type=signal.SUB_META, run=True)))
        positioner = self._positioner
        # A motor's own readback event carries ophyd's local time (EpicsMotor drops the CA
        # timestamp, bench/README.md D1); its user_readback signal has the IOC's.
        readback = getattr(positioner, "user_readback", None)
        if isinstance(readback, EpicsSignalBase):
            self._subs.append((readback, readback.subscribe(
                self._on_readback, event_type=readback.SUB_VALUE, run=True)))
        else:
            self._subs.append((positioner, positioner.subscribe(
                self._on_readback, event_type=positioner.SUB_READBACK, run=True)))
        if not self._watched:  # a soft or pseudo positioner: connected when its parts are
            self._on_meta()
            if positioner.connected:
                self._on_readback(value=positioner.position)

    def _hand_off(self, fn: Callable[[Any], None], arg: Any) -> None:
        self._inbox.post(fn, arg)  # one loop wake-up per batch of events (inbox.py)

    def _on_readback(self, value: Any = None, timestamp: float | None = None, **_: Any) -> None:
        """Runs on ophyd's callback thread. Must not block."""
        if isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        # Soft positioners give no time of their own: stamp the update when it happened.
        stamp = timestamp if timestamp is not None else time.time()
        self._hand_off(self._sink.source_value, ValueEvent(value, stamp, *self._alarm))

    def _on_meta(self, severity: Any = None, status: Any = None, **_: Any) -> None:
        """Runs on ophyd's callback thread. Must not block: reads cached attributes only."""
        if severity is not None:
            self._alarm = (severity, status)
        connected = self._is_connected()
        if connected != self._connected:
            first, self._connected = self._connected is None, connected
            if connected or not first:  # still connecting at open is not news (the entry announces it)
                self._hand_off(self._sink.source_connection, connected)
        self._hand_off(self._sink.source_access, (True, True))
        if connected:
            info = self._facts()
            self._hand_off(self._sink.source_property, PropertyEvent(
                units=info.units, precision=info.precision, lower_ctrl_limit=info.lower_ctrl_limit,
                upper_ctrl_limit=info.upper_ctrl_limit, enum_strs=None))

    def _is_connected(self) -> bool:
        """A motor counts as connected with its readback and setpoint: the signals whose
        callbacks we get (its other signals connect without telling us)."""
        if self._watched:
            return all(signal.connected for signal in self._watched)
        return bool(self._positioner.connected)

    def _facts(self) -> ChannelInfo:
        positioner = self._positioner
        low, high = _limits(positioner)
        precision = getattr(positioner, "precision", None)
        if precision is None and self._watched:
            precision = self._watched[0].metadata.get("precision")
        units = getattr(positioner, "egu", None) or None
        return ChannelInfo(kind="float", count=1, units=units, precision=precision,
                           lower_ctrl_limit=low, upper_ctrl_limit=high, access=(True, True))

    def info(self, timeout: float) -> ChannelInfo | None:
        try:
            for part in self._watched or [self._positioner]:
                _wait_connected(part, timeout)
        except TimeoutError:
            return None
        return self._facts()

    def put(self, value: Any, done: PutCallback) -> None:
        """Move; the ophyd Status reports when the move ends or fails.

        ophyd moves only a fully connected motor, and a motor's ~20 signals connect a little
        after the readback and setpoint it is shown connected by: wait for them briefly."""
        positioner = self._positioner
        try:
            _wait_connected(positioner, FULL_CONNECTION_WAIT_S)
        except TimeoutError:
            raise ConnectionError(f"{positioner.name} is not fully connected; cannot move it") from None
        try:
            status = positioner.set(value)
        except LimitError as exc:
            raise PutRejected("out_of_limits", f"{positioner.name}: {exc}") from None
        except DisconnectedError as exc:
            raise ConnectionError(f"{positioner.name} is not connected: {exc}") from None

        stops_before = self._stops

        def finished(st: Any) -> None:
            # ophyd marks a move halted by a stop as successful; the client asked for the target.
            if self._stops != stops_before:
                done(False, f"stopped at {positioner.position!r} before reaching {value!r}")
                return
            error = st.exception() if st.done else None
            done(bool(st.success), "" if st.success else str(error or "the move did not succeed"))

        status.add_callback(finished)

    def stop(self) -> None:
        """Halt a move in progress (ophyd's stop: a motor record's STOP field)."""
        self._stops += 1
        self._positioner.stop()

    def close(self) -> None:
        subs, self._subs = self._subs, []
        for obj, token in subs:
            obj.unsubscribe(token)  # only ours: other clients' callbacks stay


def _limits(positioner: Any) -> tuple[Any, Any]:
    """(low, high); a motor's setpoint limits even before all its other signals connected
    (EpicsMotor.limits raises until then)."""
    setpoint = getattr(positioner, "user_setpoint", None)
    try:
        return tuple(setpoint.limits if isinstance(setpoint, EpicsSignalBase) else positioner.limits)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - a positioner without limits
        return None, None


def _wait_connected(obj: Any, timeout: float) -> None:
    """ophyd's wait_for_connection where the object has one (a SoftPositioner has none and is
    always connected); raises TimeoutError."""
    wait = getattr(obj, "wait_for_connection", None)
    if wait is not None:
        wait(timeout=timeout)
