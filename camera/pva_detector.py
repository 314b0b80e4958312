"""An Area Detector over PV Access as a camera source: one NTNDArray PV (NDPluginPva).

``{"imageArray_PV": "pva://13SIM1:Pva1:Image"}`` names it. Unlike the Channel Access path no
readbacks are needed: every frame carries its shape, colour mode, type and counter
(camera/ntnd.py). The p4p callback only hands the frame over; decoding (and decompressing)
happens in the feed's worker, for frames a viewer is due to get. One subscription per camera
per process, through the process's PVA client (devices/sources/pva_source.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from devices.channel_layer.pvnames import source_of
from devices.sources import inbox_for, pva_context

from .feed import CameraFeed, RawFrame
from .frames import Geometry
from .ntnd import ntnd_frame
from .pva_spec import PvaSpec

log = logging.getLogger(__name__)

def unpacked(value: Any) -> tuple[Any, Geometry]:
    """Data and geometry of one NTNDArray (in the feed's worker thread)."""
    frame = ntnd_frame(value)
    return frame.data, frame.geometry


class PvaDetectorSource:
    """The NTNDArray subscription of one camera, opened with its first viewer."""

    def __init__(self, spec: PvaSpec, *, connect_timeout_s: float) -> None:
        self.spec = spec
        self._name = source_of(spec.array).name
        self._timeout = connect_timeout_s
        self._feed: CameraFeed | None = None
        self._sub: Any = None
        self._connected = False
        self._watchdog: asyncio.Task[None] | None = None

    def start(self, feed: CameraFeed) -> None:
        self._feed = feed
        loop = asyncio.get_running_loop()
        inbox = inbox_for(loop)

        def on_update(update: Any) -> None:
            """On a p4p worker thread: hand over, never raise (p4p would drop the subscription)."""
            try:
                inbox.post(self._update, update)
            except Exception:  # noqa: BLE001 - see the docstring
                log.exception("camera %s: handing a frame over failed", self.spec.array)

        self._sub = pva_context().monitor(self._name, on_update, notify_disconnect=True)
        self._watchdog = loop.create_task(self._watch(), name=f"camera-connect-{self.spec.array}")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        sub, self._sub = self._sub, None
        if sub is not None:
            await asyncio.to_thread(sub.close)

    async def _watch(self) -> None:
        await asyncio.sleep(self._timeout)
        if not self._connected and self._feed is not None:
            self._feed.report(f"The image PV {self.spec.array} did not connect within {self._timeout:g} s; "
                              "still trying", "not_connected")

    def _update(self, update: Any) -> None:
        """On the loop: a frame, or p4p's news of a disconnect."""
        feed = self._feed
        if feed is None or self._sub is None:
            return
        if isinstance(update, Exception):
            if self._connected:
                self._connected = False
                feed.report(f"The image PV {self.spec.array} is disconnected", "not_connected")
            return
        if not self._connected:
            self._connected = True
            feed.report(None)
        try:
            counter = int(update["uniqueId"])
            seconds = int(update["timeStamp.secondsPastEpoch"])
            stamp = seconds + int(update["timeStamp.nanoseconds"]) * 1e-9 if seconds else time.time()
        except (KeyError, TypeError, ValueError, LookupError):
            feed.report(f"{self.spec.array} is not an NTNDArray (no uniqueId or timeStamp)", "bad_frame")
            return
        feed.offer(RawFrame(None, None, counter, stamp, unpack=lambda: unpacked(update)))
