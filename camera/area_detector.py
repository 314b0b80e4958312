"""An Area Detector as a camera source: its array PV and the readbacks that say what it is.

The PVs come from the client's first message (ophyd-websocket's names: ``imageArray_PV``,
``startX``, ``startY``, ``sizeX``, ``sizeY``, ``colorMode``, ``dataType``, plus ``binX``,
``binY``). Missing ones default to ADSimDetector's ``13SIM1:`` names, or derive from the
array PV's prefix. The frame's shape, colour mode and data type are read from the array
plugin's own readbacks (``ArraySize0..2_RBV``, ``NDimensions_RBV``, ``ColorMode_RBV``,
``DataType_RBV`` next to ``ArrayData``): what the detector actually publishes, so binning and
plugins in between cannot break the picture. Only if those do not exist (an array that is
not an NDStdArrays plugin) do the camera's settings (``SizeX/BinX``...) decide.

Channels are the bridge's CaSource (one pyepics channel, callbacks handed to the loop), but
held by this process: frames never travel through the channel layer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from devices.sources import CaSource, PropertyEvent, ValueEvent

from .feed import CameraFeed, RawFrame
from .frames import COLOR_MODES, DATA_TYPES, FrameError, Geometry, check_modes, geometry_from_dims

log = logging.getLogger(__name__)

DEFAULT_ARRAY = "13SIM1:image1:ArrayData"
# ophyd-websocket's client fields and their ADSimDetector defaults.
CAM_FIELDS = {"startX": "cam1:MinX", "startY": "cam1:MinY", "sizeX": "cam1:SizeX", "sizeY": "cam1:SizeY",
              "colorMode": "cam1:ColorMode", "dataType": "cam1:DataType", "binX": "cam1:BinX",
              "binY": "cam1:BinY"}
READBACKS = {"size0": "ArraySize0_RBV", "size1": "ArraySize1_RBV", "size2": "ArraySize2_RBV",
             "ndims": "NDimensions_RBV", "color": "ColorMode_RBV", "dtype": "DataType_RBV"}
ENUMS = {"color": COLOR_MODES, "dtype": tuple(DATA_TYPES), "colorMode": COLOR_MODES, "dataType": tuple(DATA_TYPES)}


@dataclass(frozen=True)
class AdSpec:
    """Which PVs make up one camera."""

    array: str
    cam: tuple[tuple[str, str], ...]  # (client field, PV)
    readbacks: tuple[tuple[str, str], ...]  # (readback, PV) of the array plugin

    @property
    def key(self) -> str:
        return "ad:" + self.array + "|" + ",".join(pv for _, pv in self.cam)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> AdSpec:
        """ophyd-websocket's first message; empty or missing PVs get the defaults."""
        array = message.get("imageArray_PV") or ""
        if not isinstance(array, str):
            raise ValueError("'imageArray_PV' must be a PV name (a string)")
        prefix = "13SIM1:"
        if array:
            plugin = re.match(r"^(.*?)image\d+:ArrayData$", array)
            # AD's $(P)image1:ArrayData names the prefix exactly (even one with colons, such
            # as XF:31IDA-BI{Cam:Tbl}); otherwise ophyd-websocket's rule: up to the first colon.
            prefix = plugin.group(1) if plugin else array.split(":")[0] + ":"
        else:
            array = DEFAULT_ARRAY
        cam: list[tuple[str, str]] = []
        for name, suffix in CAM_FIELDS.items():
            given = message.get(name)
            if given is not None and not isinstance(given, str):
                raise ValueError(f"'{name}' must be a PV name (a string)")
            cam.append((name, given or prefix + suffix))
        plugin = array[: -len("ArrayData")] if array.endswith("ArrayData") else array.rsplit(":", 1)[0] + ":"
        return cls(array, tuple(cam), tuple((rb, plugin + suffix) for rb, suffix in READBACKS.items()))


class _Sink:
    """A CaSource's sink that keeps the newest value of one PV for the camera source."""

    def __init__(self, owner: AreaDetectorSource, field: str) -> None:
        self.owner, self.field = owner, field

    def source_connection(self, connected: bool) -> None:
        self.owner.connection(self.field, connected)

    def source_access(self, access: tuple[bool, bool]) -> None:
        pass

    def source_value(self, event: ValueEvent) -> None:
        self.owner.value(self.field, event)

    def source_property(self, event: PropertyEvent) -> None:
        if event.enum_strs:
            self.owner.enum_strs[self.field] = event.enum_strs


class AreaDetectorSource:
    """The channels of one camera, opened when its first viewer comes, closed after the last."""

    def __init__(self, spec: AdSpec, *, executor: Executor, connect_timeout_s: float) -> None:
        self.spec = spec
        self._executor = executor
        self._timeout = connect_timeout_s
        self._feed: CameraFeed | None = None
        self._channels: dict[str, CaSource] = {}
        self.values: dict[str, Any] = {}
        self.connected: dict[str, bool] = {}
        self.enum_strs: dict[str, tuple[str, ...]] = {}
        self.counter = 0
        self._watchdog: asyncio.Task[None] | None = None

    def start(self, feed: CameraFeed) -> None:
        self._feed = feed
        loop = asyncio.get_running_loop()
        fields = [("array", self.spec.array), *self.spec.readbacks, *self.spec.cam]
        for field, pv in fields:
            source = CaSource(pv, loop, _Sink(self, field))
            self._channels[field] = source
            loop.run_in_executor(self._executor, source.open)
        self._watchdog = loop.create_task(self._watch(), name=f"camera-connect-{self.spec.array}")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        loop = asyncio.get_running_loop()
        channels, self._channels = list(self._channels.values()), {}
        await asyncio.gather(*(loop.run_in_executor(self._executor, c.close) for c in channels))

    async def _watch(self) -> None:
        """Tell viewers when the array PV does not connect, and fetch enum strings."""
        loop = asyncio.get_running_loop()
        enums = [f for f in ("color", "dtype", "colorMode", "dataType") if f in self._channels]
        await asyncio.gather(*(loop.run_in_executor(self._executor, self._enum_info, f) for f in enums))
        await asyncio.sleep(self._timeout)
        if not self.connected.get("array") and self._feed is not None:
            self._feed.report(f"The image array PV {self.spec.array} did not connect within {self._timeout:g} s; "
                              "still trying", "not_connected")

    def _enum_info(self, field: str) -> None:
        """On a CA thread: the enum strings of a colour mode or data type PV, when it has them."""
        source = self._channels.get(field)
        info = source.info(self._timeout) if source is not None else None
        if info is not None and info.enum_strs:
            self.enum_strs[field] = info.enum_strs

    # --- from the channels (on the loop) ---------------------------------------------------

    def connection(self, field: str, connected: bool) -> None:
        self.connected[field] = connected
        if field == "array" and self._feed is not None:
            if connected:
                self._feed.report(None)
            else:
                self._feed.report(f"The image array PV {self.spec.array} is disconnected", "not_connected")

    def value(self, field: str, event: ValueEvent) -> None:
        if self._feed is None:
            return
        if field == "array":
            self.counter += 1
            self._feed.offer(RawFrame(event.value, self.geometry(), self.counter, event.timestamp or time.time()))
            return
        self.values[field] = event.value
        geometry = self.geometry()
        if geometry is not None:
            self._feed.set_geometry(geometry)

    def _enum(self, field: str) -> str | None:
        raw = self.values.get(field)
        if raw is None:
            return None
        if isinstance(raw, str):
            return raw
        names = self.enum_strs.get(field) or ENUMS[field]
        index = int(raw)
        return names[index] if 0 <= index < len(names) else str(index)

    def geometry(self) -> Geometry | None:
        """From the array plugin's readbacks when they exist, else from the camera settings."""
        feed = self._feed
        try:
            if all(f in self.values for f in ("size0", "size1", "size2", "color", "dtype")):
                ndims = self.values.get("ndims")
                return geometry_from_dims((self.values["size0"], self.values["size1"], self.values["size2"]),
                                          int(ndims) if ndims is not None else None,
                                          self._enum("color") or "", self._enum("dtype") or "")
            if all(f in self.values for f in ("sizeX", "sizeY", "colorMode", "dataType")):
                mode, dtype = self._enum("colorMode") or "", self._enum("dataType") or ""
                check_modes(mode, dtype)
                bin_x = max(int(self.values.get("binX") or 1), 1)
                bin_y = max(int(self.values.get("binY") or 1), 1)
                width, height = int(self.values["sizeX"]) // bin_x, int(self.values["sizeY"]) // bin_y
                if width <= 0 or height <= 0:
                    raise FrameError(f"the camera is set to a {width}×{height} image; nothing to show")
                return Geometry(width, height, mode, dtype)
        except FrameError as exc:
            if feed is not None:
                feed.report(f"Camera {self.spec.array}: {exc}", "bad_mode")
        return None

