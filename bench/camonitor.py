"""The IOC's own record of a PV's updates: a CA monitor in the load generator, beside the server.

The device socket stamps a motor's readback with the time ophyd saw it in the server (ophyd's
``EpicsMotor`` drops the CA timestamp), so its messages cannot tell how late they are against
the IOC. This monitor keeps every update of the readback PV with the IOC's timestamp; a value a
client received is matched to the latest IOC update with the same value before it arrived.
Positions of a moving motor repeat only from one sweep to the next, so the match is unambiguous
while latency stays below a sweep.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from array import array
from typing import Any

from caproto.threading.client import Context


class PvHistory:
    """Every update of one PV: the IOC's timestamp, the value, and when it arrived here."""

    def __init__(self, pvname: str, env: dict[str, str]) -> None:
        self.pvname = pvname
        self.stamps: array[float] = array("d")
        self.values: array[float] = array("d")
        self.arrived: array[float] = array("d")
        self._lock = threading.Lock()
        # caproto reads the CA variables from the environment when the context is made.
        os.environ.update(env)
        self._context = Context()
        self._pv: Any = None
        self._sub: Any = None

    def start(self, timeout: float = 10.0) -> None:
        (self._pv,) = self._context.get_pvs(self.pvname, timeout=timeout)
        self._pv.wait_for_connection(timeout=timeout)
        self._sub = self._pv.subscribe(data_type="time")
        self._sub.add_callback(self._on_update)  # caproto keeps a weak reference; we hold self

    def _on_update(self, sub: Any, response: Any) -> None:
        """Runs on caproto's callback thread. Must not block."""
        now = time.time()
        with self._lock:
            self.stamps.append(float(response.metadata.timestamp))
            self.values.append(float(response.data[0]))
            self.arrived.append(now)

    def stop(self) -> None:
        # No unsubscribe first: its reply can arrive after the channel closed, and caproto
        # logs a traceback for it. Closing the circuit ends the subscription anyway.
        broadcaster = self._context.broadcaster  # our own; the context drops it on disconnect
        self._context.disconnect()
        broadcaster.disconnect()

    def index(self) -> dict[float, list[float]]:
        """value -> the IOC timestamps it was published at, in order (for ``ioc_stamp``)."""
        with self._lock:
            pairs = list(zip(self.values, self.stamps, strict=True))
        found: dict[float, list[float]] = {}
        for value, stamp in pairs:
            found.setdefault(value, []).append(stamp)
        return found

    def window(self, start: float, end: float) -> tuple[int, float]:
        """IOC updates stamped in [start, end), and the seconds of that window the PV was
        changing (a gap between updates over 3 × the median gap counts as standing still)."""
        with self._lock:
            stamps = [s for s in self.stamps if start <= s < end]
        if len(stamps) < 2:
            return len(stamps), 0.0
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        typical = gaps[len(gaps) // 2]
        moving = sum(g for g in gaps if g <= 3 * typical)
        return len(stamps), moving


def ioc_stamp(index: dict[float, list[float]], value: float, received: float) -> float | None:
    """The IOC timestamp of the latest update with ``value`` published before ``received``."""
    stamps = index.get(value)
    if not stamps:
        return None
    at = bisect.bisect_right(stamps, received) - 1
    return stamps[at] if at >= 0 else None
