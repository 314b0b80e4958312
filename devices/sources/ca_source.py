"""A PV as one pyepics channel with one lean monitor; CA callbacks only hand off to the loop.

The channel is a pyepics ``PV`` without its own monitor (for connection and access events,
puts and reconnects); values arrive through ``ca_monitor.Monitor``, metadata through a
DBE_PROPERTY subscription whose first event stands in for a DBR_CTRL get, so thousands of
channels connecting at once do not queue a blocking round trip each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import epics
from epics import ca, dbr

from .batch_calls import batcher_for
from .ca_context import ca_executor
from .ca_monitor import Monitor
from .ca_put import put_with_status
from .inbox import inbox_for
from .source import ChannelInfo, PropertyEvent, PutCallback, SourceSink, ValueEvent

log = logging.getLogger(__name__)

_KINDS = {
    dbr.STRING: "string",
    dbr.INT: "int",
    dbr.LONG: "int",
    dbr.CHAR: "int",
    dbr.FLOAT: "float",
    dbr.DOUBLE: "float",
    dbr.ENUM: "enum",
}


class CaSource:
    """The single CA channel the process holds for one PV name."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink) -> None:
        self.name = name
        self._loop = loop
        self._inbox = inbox_for(loop)
        self._sink = sink
        self._pv: epics.PV | None = None
        # pyepics runs the connection callback inside PV() when the channel already exists
        # (another PV object opened it), so `info` may be asked before `_pv` is assigned.
        self._opened = threading.Event()
        # open, reopen and close run on different CA threads; two of them clearing the same
        # channel at once crashes libca (seen: a release racing a reopen), so they take turns.
        self._lifecycle = threading.Lock()
        self._property_sub: Monitor | None = None
        self._monitor: Monitor | None = None
        self._ctrl: dict[str, Any] = {}  # the latest DBR_CTRL fields of the property events
        self._ctrl_seen = threading.Event()
        self._native: tuple[int, int] | None = None  # field type and count, once subscribed
        # Counted on the CA thread without the lifecycle lock (a callback waiting for it could
        # deadlock libca): lets _subscribe drop a type it read before a disconnect.
        self._disconnects = 0

    def open(self) -> None:
        """Create the channel and its monitor (value and alarm events, DBR_TIME form)."""
        try:
            with self._lifecycle:
                self._create()
        finally:
            self._opened.set()

    def _create(self) -> None:
        """Make the channel's PV object, again if pyepics handed out a channel being cleared.

        pyepics reuses a cached channel for a name; when another thread clears that channel
        at the same moment (a released entry's close, an ophyd device's PV), the new PV's
        connection callback finds a channel id pyepics no longer knows and raises
        "Unexpected channel ID" (seen in a full test run). A fresh attempt gets a new channel.
        """
        for attempt in range(4):
            try:
                with channel_lock(self.name):
                    self._pv = _PrivatePV(self.name, form="time", auto_monitor=False,
                                          connection_callback=self._on_connection, access_callback=self._on_access)
                return
            except ca.ChannelAccessException:
                if attempt == 3:
                    raise
                log.info("channel for %s was being cleared while opened; opening again", self.name)
                time.sleep(0.02 * (attempt + 1))

    def _hand_off(self, fn: Callable[[Any], None], arg: Any) -> None:
        self._inbox.post(fn, arg)  # one loop wake-up per batch of events (inbox.py)

    def _on_value(self, value: Any, timestamp: float | None, severity: int | None, status: int | None) -> None:
        """Runs on the CA callback thread. Must not block."""
        self._hand_off(self._sink.source_value, ValueEvent(value, timestamp, severity, status))

    def _on_connection(self, pvname: str | None = None, conn: bool = False, **_: Any) -> None:
        """Runs on the CA callback thread. Must not block."""
        if not conn:  # a restarted IOC may serve another type or size: ask again
            self._disconnects += 1
            self._native = None
        self._hand_off(self._sink.source_connection, bool(conn))
        if conn:
            self._hand_off(self._subscribe_soon, None)

    def _subscribe_soon(self, _: Any) -> None:
        """On the loop: monitor the connected channel from a CA thread (users that never ask
        ``info``, such as the camera's readbacks, get values too)."""
        # With the other channels connecting now, in one executor job (batch_calls.py).
        future = batcher_for(self._loop, ca_executor()).call(self._subscribe, False)
        future.add_done_callback(_log_failure)

    def _subscribe(self, flush: bool = True) -> tuple[int, int] | None:
        """Create the value and property subscriptions once per channel; its native type and
        element count, or None when it is not connected (any more).

        Every libca call on the channel happens under the lifecycle lock, after checking that
        the channel is still ours: a close or reopen clears it, and libca crashes on a
        cleared channel id (seen: a camera closing while its channels subscribed)."""
        with self._lifecycle:
            seen = self._disconnects
            pv = self._pv
            chid = pv.chid if pv is not None else None
            if self._native is not None and self._monitor is not None and self._property_sub is not None:
                return self._native  # done already (info() asks again): no libca round of queries
            if chid is None or not ca.isConnected(chid):
                return None
            native = ca.field_type(chid)
            count = int(ca.element_count(chid))
            if self._monitor is None:
                # count 0: the server's current size, as pyepics asks (a fixed count bigger
                # than what a server sends made libca hand over a short buffer: SIGSEGV)
                self._monitor = Monitor(chid, self._on_value, native=native, count=0)
            if self._property_sub is None:
                self._property_sub = Monitor(chid, self._on_property, native=native, count=1, properties=True)
            if flush:  # else the batch's epilogue flushes (ca_context.py)
                ca.flush_io()
            self._native = (native, count)
            if self._disconnects != seen:  # disconnected meanwhile: read it again next time
                self._native = None
            return (native, count)

    def _on_property(self, units: Any = None, precision: Any = None, lower_ctrl_limit: Any = None,
                     upper_ctrl_limit: Any = None, enum_strs: Any = None, **_: Any) -> None:
        """Runs on the CA callback thread. Must not block: passes the DBR_CTRL fields on as they are."""
        self._ctrl = {"units": units, "precision": precision, "lower_ctrl_limit": lower_ctrl_limit,
                      "upper_ctrl_limit": upper_ctrl_limit, "enum_strs": enum_strs}
        self._ctrl_seen.set()
        self._hand_off(self._sink.source_property, PropertyEvent(
            units=_text(units), precision=precision, lower_ctrl_limit=lower_ctrl_limit,
            upper_ctrl_limit=upper_ctrl_limit,
            enum_strs=tuple(_text(s) or "" for s in enum_strs) if enum_strs else None))

    def _on_access(self, read_access: bool, write_access: bool, **_: Any) -> None:
        """Runs on the CA callback thread. Must not block."""
        self._hand_off(self._sink.source_access, (bool(read_access), bool(write_access)))

    def info_ready(self) -> ChannelInfo | None:
        """``info`` without waiting: None unless the channel is open and connected now. Safe
        to run among other calls in one executor job (sources/batch_calls.py)."""
        return self.info(0.0)

    def info(self, timeout: float) -> ChannelInfo | None:
        """Native type, element count and control metadata; None when not connected."""
        if not self._opened.wait(timeout):
            return None
        pv = self._pv
        if pv is None or not self._connected(pv, timeout):
            return None
        subscribed = self._subscribe()
        if subscribed is None:
            return None
        native, count = subscribed
        # A new subscription's first event carries the current DBR_CTRL fields; until it came,
        # the bridge waits for it on its loop (no thread blocked per channel).
        pending = not self._ctrl_seen.is_set()
        ctrl = {} if pending else self._ctrl
        kind = _KINDS.get(native, "float")
        if native == dbr.CHAR and count > 1:
            kind = "char"
        enum_strs = ctrl.get("enum_strs")
        return ChannelInfo(
            kind=kind,
            count=count,
            units=_text(ctrl.get("units")),
            precision=ctrl.get("precision"),
            lower_ctrl_limit=ctrl.get("lower_ctrl_limit"),
            upper_ctrl_limit=ctrl.get("upper_ctrl_limit"),
            enum_strs=tuple(_text(s) or "" for s in enum_strs) if enum_strs else None,
            access=self._access(),
            metadata_pending=pending,
        )

    def _connected(self, pv: epics.PV, timeout: float) -> bool:
        """Whether libca has ``pv``'s channel connected, waiting up to ``timeout``.

        Asked of libca, not of ``PV.connected`` (set only after our connection callback ran),
        and without ``PV.wait_for_connection``, whose ``ca.poll`` waits for every request in
        flight; under the lock, since the channel may be cleared meanwhile.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lifecycle:
                if self._pv is not pv:
                    return False
                chid = pv.chid
                if chid is not None and ca.isConnected(chid):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def _access(self) -> tuple[bool, bool]:
        """Read and write access, read directly: pyepics can miss the first access-rights event."""
        with self._lifecycle:
            pv = self._pv
            chid = pv.chid if pv is not None else None
            if chid is None:
                return (False, False)
            return (ca.read_access(chid) == 1, ca.write_access(chid) == 1)

    def put(self, value: Any, done: PutCallback) -> None:
        with self._lifecycle:  # never on a channel a concurrent reopen or close is clearing
            pv = self._pv
            if pv is None or not pv.connected:
                raise ConnectionError(f"{self.name} is not connected")
            put_with_status(pv.chid, value, done)

    def reopen(self) -> bool:
        """Replace a disconnected channel with a new one, which libca searches for at once.

        Skipped (False) when another PV object shares the channel: clearing it is unsafe.
        """
        with self._lifecycle:
            return self._reopen_locked()

    def _reopen_locked(self) -> bool:
        pv = self._pv
        if pv is None or pv.connected:
            return False  # closed meanwhile, or back by itself
        chid = pv.chid
        self._drop_subscriptions()
        pv.disconnect()  # our callbacks leave the channel, so `_unused` sees only others
        with channel_lock(self.name):
            cleared = chid is not None and _unused(self.name)
            if cleared:
                ca.clear_channel(chid)
                ca.flush_io()
        self._create()  # on a shared channel this simply re-attaches
        return cleared

    def _drop_subscriptions(self) -> None:
        """Clear both subscriptions (value and property) of the current channel."""
        sub, self._property_sub = self._property_sub, None
        if sub is not None:
            sub.clear()
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.clear()
        self._ctrl_seen.clear()
        self._native = None

    def close(self) -> None:
        """Drop the monitor and, when nobody else in the process uses it, the channel."""
        with self._lifecycle:
            self._close_locked()

    def _close_locked(self) -> None:
        pv, self._pv = self._pv, None
        if pv is None:
            return
        chid = pv.chid
        try:
            self._drop_subscriptions()
            pv.clear_callbacks()
            pv.disconnect()
            with channel_lock(self.name):
                if chid is not None and _unused(self.name):
                    ca.clear_channel(chid)
        except Exception:  # noqa: BLE001 - releasing must never break the bridge
            log.exception("releasing %s", self.name)


class _PrivatePV(epics.PV):
    """A pyepics PV that is not in pyepics' PV cache, and keeps it that way.

    ``PV.disconnect`` (also run by ``__del__``) evicts whatever cached PV has the same name
    and form, which is ophyd's PV when a device uses the same channel. ophyd then makes a
    second PV object on the shared channel and, when the first one's last signal goes, clears
    the channel under the second: a reloaded EpicsMotor stayed without callbacks (found by
    tests/system_tests/test_demo_motor.py after a pv-socket client watched the motor's RBV).
    """

    def disconnect(self, deepclean: bool = True) -> None:
        key = (self.pvname, self.form, ca.current_context())
        cached = epics.pv._PVcache_.get(key)
        super().disconnect(deepclean)
        if cached is not None and cached is not self:
            epics.pv._PVcache_.setdefault(key, cached)  # not ours to evict


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("subscribing failed", exc_info=future.exception())


# pyepics shares one channel per name among PV objects. Deciding that nobody else uses a channel
# and clearing it must not interleave with another source attaching a new PV object to it (a
# bridge entry released while a camera opens the same PV): a clear in between would leave that
# PV on a dead channel, silently. (The clear/create race across names is pyepics_fix.py's.)
_CHANNEL_LOCKS = tuple(threading.Lock() for _ in range(64))


def channel_lock(name: str) -> threading.Lock:
    """The lock that attaching to and clearing the channel ``name`` take (never held in a CA
    callback, so holding it across a libca call cannot deadlock)."""
    return _CHANNEL_LOCKS[hash(name) % len(_CHANNEL_LOCKS)]


def _unused(name: str) -> bool:
    """Whether no other pyepics PV object (an ophyd device, say) still uses this channel.

    Clearing a channel under another PV object crashes libca when that object is later
    garbage-collected, so the channel is kept whenever anybody else registered on it.
    """
    entry = ca._cache[ca.current_context()].get(name)
    if entry is None or entry.callbacks or entry.access_event_callback:
        return False
    return not any(key[0] == name for key in list(epics.pv._PVcache_))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
