"""Connection watches for EPICS-backed ophyd-async signals, which report no disconnects.

ophyd-async makes its aioca and p4p monitors without ``notify_disconnect``, so a signal would
count as connected for good once its connect succeeded. A watch is one more monitor of the same
PV, made on the ophyd-async runtime's loop with ``notify_disconnect=True``: a disconnect calls
``on_change(False)``, the first update after it ``on_change(True)``. Values resume through
ophyd-async's own monitor, which libca and pvxs restore after a reconnect (measured: IOC and PVA
server killed and restarted on the same port).

- CA: aioca's ``camonitor``. aioca keeps one channel per PV name and event loop, so on the
  runtime's loop the watch shares the channel ophyd-async opened: no new channel at the IOC
  (the demo IOC's ``diag:channels`` counts one). It asks for DBE_PROPERTY and one element: an
  EPICS base IOC then sends an update on (re)connect and on metadata changes only; caproto IOCs
  send one with every value (one element each).
- PVA: ophyd-async's own p4p context (one per process, so one channel per PV), asking for
  ``alarm.severity`` only: QSRV and p4p servers then send the first update and alarm changes,
  not every value or image. ophyd-async reads that field of every PVA signal it subscribes; a
  structure without it refuses the request, and the watch then asks for the whole structure.

Soft and mock signals (``soft://``, ``mock+ca://``) are not watched: they cannot disconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

CA_CONNECTED = 2  # aioca's CAInfo.state for a connected channel (libca's cs_conn)
PVA_REQUEST = "field(alarm.severity)"
# A PVA watch that saw no update this long after it started finds its server gone (p4p starts
# every subscription "disconnected", so a server lost before the first update sends nothing).
PVA_FIRST_UPDATE_S = 5.0


class ConnectionWatch(Protocol):
    def close(self) -> None:
        """Stop watching; no ``on_change`` after this."""


def channel_of(source: str) -> tuple[str, str] | None:
    """(protocol, PV name) of a signal's ``source`` ("ca://X", "pva://X"); None for others."""
    protocol, sep, name = source.partition("://")
    if sep and name and protocol in ("ca", "pva"):
        return protocol, name
    return None


async def watch_connection(source: str, on_change: Callable[[bool], None]) -> ConnectionWatch | None:
    """Watch the channel behind ``source`` (a signal's ``source``, connected), or None when it is
    not an EPICS channel. Runs on the runtime's loop, as every ``on_change`` call does."""
    channel = channel_of(source)
    if channel is None:
        return None
    protocol, name = channel
    if protocol == "ca":
        watch: _Watch = _CaWatch(name, on_change)
    else:
        watch = _PvaWatch(name, on_change)
    await watch.check()
    return watch


class _Watch:
    """Reports changes of one channel's connection, starting from connected."""

    def __init__(self, name: str, on_change: Callable[[bool], None]) -> None:
        self.name = name
        self._on_change = on_change
        self._connected = True  # the signal's connect just succeeded
        self._closed = False

    def _report(self, connected: bool) -> None:
        """Runs on the runtime's loop. Must not raise into aioca or p4p: either ends the
        subscription (p4p silently)."""
        if self._closed or connected == self._connected:
            return
        self._connected = connected
        try:
            self._on_change(connected)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("reporting the connection of %s", self.name)

    async def check(self) -> None:
        """Catch a disconnect between the signal's connect and the watch's first event."""

    def close(self) -> None:
        self._closed = True


class _CaWatch(_Watch):
    def __init__(self, name: str, on_change: Callable[[bool], None]) -> None:
        from aioca import DBE_PROPERTY, camonitor

        super().__init__(name, on_change)
        self._sub = camonitor(name, self._on_update, events=DBE_PROPERTY, count=1, notify_disconnect=True)

    async def check(self) -> None:
        """libca's own state, which is set before the disconnect event is queued to the loop:
        a channel lost before the subscription joined it sends that subscription nothing."""
        from aioca import cainfo

        info = await cainfo(self.name, wait=False)
        if info.state != CA_CONNECTED:
            self._report(False)

    def _on_update(self, value: Any) -> None:
        """Runs on the runtime's loop: a value (connected) or a CANothing (disconnected)."""
        try:
            self._report(bool(getattr(value, "ok", True)))
        except Exception:  # noqa: BLE001 - aioca closes a subscription whose callback raises
            log.exception("connection watch of ca://%s", self.name)

    def close(self) -> None:
        super().close()
        self._sub.close()


class _PvaWatch(_Watch):
    def __init__(self, name: str, on_change: Callable[[bool], None]) -> None:
        from ophyd_async.epics.core._p4p import context

        super().__init__(name, on_change)
        self._ctxt = context()
        self._request: str | None = PVA_REQUEST
        self._seen = False  # an update came: exceptions before it are p4p's initial "Disconnected"
        self._sub = self._ctxt.monitor(name, self._on_update, request=self._request, notify_disconnect=True)
        self._timer = asyncio.get_running_loop().call_later(PVA_FIRST_UPDATE_S, self._no_first_update)

    def _no_first_update(self) -> None:
        if not self._seen:
            self._report(False)

    async def _on_update(self, update: Any) -> None:
        """Runs on the runtime's loop. Never raises: p4p would end the subscription silently."""
        try:
            self._handle(update)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("connection watch of pva://%s", self.name)

    def _handle(self, update: Any) -> None:
        from p4p.client.asyncio import Cancelled, Disconnected, Finished, RemoteError

        if self._closed or isinstance(update, Cancelled):
            return
        if not isinstance(update, Exception):
            self._seen = True
            self._report(True)
        elif isinstance(update, RemoteError) and not self._seen and self._request is not None:
            self._resubscribe_whole()  # a structure without alarm.severity
        elif isinstance(update, Disconnected):
            if self._seen:
                self._report(False)
        else:  # RemoteError, or Finished: the server ended the subscription (ophyd-async's too)
            log.warning("pva://%s: %r", self.name, update)
            self._report(False)
            if isinstance(update, Finished):
                self.close()  # reported disconnected for good: no values will come

    def _resubscribe_whole(self) -> None:
        self._request = None
        old, self._sub = self._sub, self._ctxt.monitor(self.name, self._on_update, notify_disconnect=True)
        old.close()

    def close(self) -> None:
        super().close()
        self._timer.cancel()
        self._sub.close()
