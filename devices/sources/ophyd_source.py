"""An ophyd Signal as a bridge Source, so device signals share the PV machinery.

Rate cap, publishing and set outcomes stay in the bridge core; this adapter subscribes to
the signal's value and metadata callbacks (which ophyd runs on its dispatcher thread, or on
the thread that wrote a soft signal) and only hands events to the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ophyd import Signal

from .inbox import inbox_for
from .source import ChannelInfo, PropertyEvent, PutCallback, SourceSink, ValueEvent


class OphydSignalSource:
    """One ophyd Signal (of a registered device) behind the bridge's Source interface."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink, signal: Signal,
                 mover: Any = None) -> None:
        """``mover``: what a set moves when it is not the signal itself (a positioner whose
        readback this is); writes are then allowed even though the readback is read-only."""
        self.name = name
        self._mover = mover
        self._loop = loop
        self._inbox = inbox_for(loop)
        self._sink = sink
        self._signal = signal
        self._tokens: list[int] = []
        self._alarm: tuple[Any, Any] = (None, None)  # (severity, status) from the latest metadata
        self._connected: bool | None = None
        self._got_value = False

    def open(self) -> None:
        self._tokens = [
            self._signal.subscribe(self._on_meta, event_type=self._signal.SUB_META, run=True),
            self._signal.subscribe(self._on_value, event_type=self._signal.SUB_VALUE, run=True),
        ]
        # ophyd replays only what it has run before: a soft signal that was never written has
        # announced neither its metadata nor its value, so take them directly.
        if self._connected is None:
            self._on_meta(**dict(self._signal.metadata))
        if not self._got_value and self._signal.connected:
            self._on_value(value=self._signal.get(), timestamp=self._signal.timestamp)

    def _hand_off(self, fn: Callable[[Any], None], arg: Any) -> None:
        self._inbox.post(fn, arg)  # one loop wake-up per batch of events (inbox.py)

    def _on_value(self, value: Any = None, timestamp: float | None = None, **_: Any) -> None:
        """Runs on ophyd's callback thread. Must not block."""
        self._got_value = True
        self._hand_off(self._sink.source_value, ValueEvent(value, timestamp, *self._alarm))

    def _on_meta(self, connected: bool | None = None, read_access: bool | None = None,
                 write_access: bool | None = None, severity: Any = None, status: Any = None,
                 units: Any = None, precision: Any = None, lower_ctrl_limit: Any = None,
                 upper_ctrl_limit: Any = None, enum_strs: Any = None, **_: Any) -> None:
        """Runs on ophyd's callback thread. Must not block: hands each kind of change on."""
        self._alarm = (severity, status)
        if connected is not None and connected != self._connected:
            first, self._connected = self._connected is None, connected
            if connected or not first:  # still connecting at open is not news (the entry announces it)
                self._hand_off(self._sink.source_connection, bool(connected))
        if read_access is not None and write_access is not None:
            writable = bool(write_access) or self._mover is not None
            self._hand_off(self._sink.source_access, (bool(read_access), writable))
        self._hand_off(self._sink.source_property, PropertyEvent(
            units=units, precision=precision, lower_ctrl_limit=lower_ctrl_limit,
            upper_ctrl_limit=upper_ctrl_limit, enum_strs=tuple(enum_strs) if enum_strs else None))

    def info(self, timeout: float) -> ChannelInfo | None:
        signal = self._signal
        try:
            signal.wait_for_connection(timeout=timeout)
        except TimeoutError:
            return None
        meta = dict(signal.metadata)
        description = signal.describe().get(signal.name, {})
        dtype, shape = description.get("dtype", "number"), description.get("shape") or []
        enum_strs = meta.get("enum_strs") or getattr(signal, "enum_strs", None)
        kind = {"integer": "int", "string": "string", "boolean": "int"}.get(dtype, "float")
        if enum_strs:
            kind = "enum"
        low, high = meta.get("lower_ctrl_limit"), meta.get("upper_ctrl_limit")
        if low is None and high is None and hasattr(signal, "limits"):
            low, high = signal.limits
        return ChannelInfo(
            kind=kind, count=int(shape[0]) if shape else 1, units=meta.get("units"),
            precision=meta.get("precision"), lower_ctrl_limit=low, upper_ctrl_limit=high,
            enum_strs=tuple(enum_strs) if enum_strs else None,
            access=(bool(meta.get("read_access", True)),
                    bool(meta.get("write_access", True)) or self._mover is not None))

    def put(self, value: Any, done: PutCallback) -> None:
        """``set`` with ophyd's Status: a positioner reports when its move ends, or fails."""
        status = (self._mover if self._mover is not None else self._signal).set(value)

        def finished(st: Any) -> None:
            error = st.exception() if st.done else None
            done(bool(st.success), "" if st.success else str(error or "the set did not succeed"))

        status.add_callback(finished)

    def close(self) -> None:
        tokens, self._tokens = self._tokens, []
        for token in tokens:
            self._signal.unsubscribe(token)  # only ours: never _reset_sub, other clients stay
