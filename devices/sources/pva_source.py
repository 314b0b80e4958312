"""A PV Access PV as one p4p monitor; p4p callbacks only hand off to the loop.

One p4p client context serves the process (``pva_context``), built with ``nt=False``: the
normative types are mapped here (pva_types.py), not by p4p's unwrapping, which caches enum
choices per context and mixes them up between PVs. Each source holds one subscription with
``notify_disconnect=True`` (without it p4p never reports a disconnect). A p4p callback that
raises ends its subscription for good and silently, so every callback here is guarded.

PVA has no connection event of its own: the first update after a disconnect is the connection,
and it carries the type, so ``info`` waits for it. PVA has no per-channel access rights as CA
has; a connected PV reports (read, write) = (True, True), and the server's refusal of a put
comes back as the put's outcome.

A PV whose structure is no mapped normative type connects with
``ChannelInfo(kind="unsupported", count=0, extra={"error": ..., "type_id": ...})``, sends no
values, and its puts end with ``done(False, <that error>)``: the bridge answers the client with
the error and keeps the socket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from typing import Any

from .inbox import inbox_for
from .pva_types import UNSUPPORTED, assign_put, channel_info, metadata_fields, property_event, value_event
from .source import ChannelInfo, PropertyEvent, PutCallback, SourceSink

log = logging.getLogger(__name__)

# A put that waits for the server's processing to end, as a CA put with callback does.
PUT_REQUEST = "field()record[block=true,process=passive]"

_context_lock = threading.Lock()
_context: Any = None
_context_conf: dict[str, str] | None = None


def configure_pva_context(conf: dict[str, str] | None) -> None:
    """Set the EPICS_PVA_* configuration of the process's PVA client (None: the environment's).

    Sources opened from now on use a context built with it; those opened before keep theirs
    until they are closed. Tests use it to reach an isolated server (``Server.conf()``).
    """
    global _context, _context_conf
    with _context_lock:
        _context_conf = dict(conf) if conf is not None else None
        _context = None


def pva_context() -> Any:
    """The process's p4p client context, created on first use."""
    global _context
    with _context_lock:
        if _context is None:
            from p4p.client.thread import Context

            conf = _context_conf
            _context = Context("pva", conf=conf, useenv=conf is None, nt=False)
        return _context


class PvaSource:
    """The single PVA subscription the process holds for one PV name (without ``pva://``)."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink) -> None:
        self.name = name
        self._inbox = inbox_for(loop)
        self._sink = sink
        self._lock = threading.RLock()  # subscription, context, puts (a put may complete inside put)
        self._ctxt: Any = None
        self._sub: Any = None
        self._closed = False
        self._finished = False  # the server ended the subscription: ``reopen`` makes a new one
        self._puts: dict[object, Any] = {}  # operations (p4p cancels one it no longer holds)
        self._settled: list[object] = []  # puts completed, their operations not yet released
        # Written only on the subscription's p4p worker thread (one per subscription, in order).
        self._connected = False
        self._enum = False
        self._meta_fields: tuple[str, ...] = ()
        self._property: PropertyEvent | None = None
        self._info: ChannelInfo | None = None
        self._info_seen = threading.Event()

    def open(self) -> None:
        """Subscribe; values, connection and metadata then arrive through the sink."""
        ctxt = pva_context()
        with self._lock:
            if self._closed or self._sub is not None:
                return
            self._ctxt = ctxt
            self._sub = ctxt.monitor(self.name, self._on_update, notify_disconnect=True)

    # --- p4p callbacks --------------------------------------------------------------------

    def _on_update(self, update: Any) -> None:
        """Runs on a p4p worker thread. Must not block, and never raises: an exception here
        would end the subscription silently."""
        try:
            if self._closed:
                return
            if isinstance(update, Exception):
                self._on_exception(update)
            else:
                self._on_value(update)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("handling an update of pva://%s failed", self.name)

    def _on_value(self, value: Any) -> None:
        post = self._inbox.post
        if not self._connected:
            self._connect(value)
        elif self._meta_fields and value.changed(*self._meta_fields):
            prop = property_event(value)
            if prop != self._property and self._info is not None:
                self._property = prop
                self._info = replace(self._info, units=prop.units, precision=prop.precision,
                                     lower_ctrl_limit=prop.lower_ctrl_limit,
                                     upper_ctrl_limit=prop.upper_ctrl_limit, enum_strs=prop.enum_strs)
                post(self._sink.source_property, prop)
        if self._property is not None:  # None: an unsupported structure sends no values
            post(self._sink.source_value, value_event(value, self._enum))

    def _connect(self, value: Any) -> None:
        """The first update since (re)connecting: learn the type, then tell the sink."""
        info = channel_info(value)
        supported = info.kind != UNSUPPORTED
        if not supported:
            log.warning("pva://%s: %s", self.name, info.extra["error"])
        self._enum = info.kind == "enum"
        self._meta_fields = metadata_fields(value) if supported else ()
        self._property = property_event(value) if supported else None
        self._info = info
        self._info_seen.set()
        self._connected = True
        post = self._inbox.post
        post(self._sink.source_connection, True)
        post(self._sink.source_access, info.access)
        if self._property is not None:
            post(self._sink.source_property, self._property)

    def _on_exception(self, exc: Exception) -> None:
        from p4p.client.thread import Cancelled, Disconnected, Finished

        if isinstance(exc, Cancelled):
            return  # our own close()
        if isinstance(exc, Finished):
            self._finished = True  # p4p dropped the subscription; the bridge's reopen renews it
        elif not isinstance(exc, Disconnected):
            log.warning("pva://%s: %s", self.name, exc)
        if self._connected:  # a new subscription starts "disconnected": nothing to report then
            self._connected = False
            self._info_seen.clear()
            self._info = None
            self._inbox.post(self._sink.source_connection, False)

    # --- Source ---------------------------------------------------------------------------

    def info(self, timeout: float) -> ChannelInfo | None:
        """Kind, count and metadata, known from the first update; None until it came."""
        if not self._info_seen.wait(timeout):
            return None
        return self._info

    def info_ready(self) -> ChannelInfo | None:
        """``info`` without waiting (sources/batch_calls.py)."""
        return self.info(0.0)

    def put(self, value: Any, done: PutCallback) -> None:
        """Start a put that completes when the server has processed it; ``done(ok, message)``
        runs on a p4p thread, with the server's error message on failure. Never raises."""
        try:
            self._start_put(value, done)
        except Exception as exc:  # noqa: BLE001 - reported through done, as promised
            log.exception("put to pva://%s", self.name)
            done(False, str(exc) or type(exc).__name__)

    def _start_put(self, value: Any, done: PutCallback) -> None:
        from p4p.client.raw import Context as RawContext

        info = self._info
        if not self._connected or info is None:
            done(False, f"pva://{self.name} is not connected")
            return
        if info.kind == UNSUPPORTED:
            done(False, str(info.extra.get("error")))
            return
        token = object()

        def finished(result: Any) -> None:
            """Runs on a p4p thread. Must not block, and must not drop the operation: pvxs
            cannot destroy an operation on its own worker thread (it logs "syncCancel ...
            being destroyed on worker thread" and the worker stops serving)."""
            with self._lock:
                self._settled.append(token)
            try:
                if result is None:
                    done(True, "")
                else:
                    done(False, str(result) or type(result).__name__)
            except Exception:  # noqa: BLE001 - never into p4p
                log.exception("put completion of pva://%s", self.name)

        def build(target: Any) -> None:
            assign_put(target, value, info.enum_strs)

        with self._lock:
            if self._closed or self._ctxt is None:
                done(False, f"pva://{self.name} is closed")
                return
            for settled in self._settled:  # released here, on the caller's (executor) thread
                self._puts.pop(settled, None)
            self._settled.clear()
            self._puts[token] = None
            try:
                op = RawContext.put(self._ctxt, self.name, finished, builder=build, request=PUT_REQUEST, get=False)
            except BaseException:
                self._puts.pop(token, None)
                raise
            self._puts[token] = op  # kept until a later put or close releases it off p4p's threads

    def reopen(self) -> bool:
        """Subscribe anew when the server ended the subscription (p4p reconnects a lost
        connection by itself: nothing to do then)."""
        with self._lock:
            if self._closed or not self._finished or self._ctxt is None:
                return False
            self._finished = False
            old, self._sub = self._sub, self._ctxt.monitor(self.name, self._on_update, notify_disconnect=True)
        if old is not None:
            old.close()
        return True

    def close(self) -> None:
        """Cancel the subscription and any put in flight."""
        with self._lock:
            self._closed = True
            sub, self._sub = self._sub, None
            ops = [op for op in self._puts.values() if op is not None]
            self._puts.clear()
            self._settled.clear()
        try:
            if sub is not None:
                sub.close()
            for op in ops:
                op.close()
        except Exception:  # noqa: BLE001 - releasing must never break the bridge
            log.exception("closing pva://%s", self.name)
