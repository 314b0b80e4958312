"""A caproto IOC that looks like an EPICS Area Detector: ADSimDetector plus one NDStdArrays plugin.

    python -m tests.support.ad_ioc --prefix AD_ --host 127.0.0.1 --port 5064

A CA channel's type is fixed, so one detector is served per data type, each below its own
prefix P = ``{prefix}{DataType}:`` with AD's records below that: ``AD_UInt16:cam1:SizeX``,
``AD_UInt16:image1:ArrayData``. P is one name segment (keep ':' out of ``--prefix``): camera
clients (ophyd-websocket, ``camera/area_detector.py``) take the segment before the first ':'
of the ArrayData name as the prefix of ``cam1:``. Each detector's DataType is fixed; ColorMode,
the region and binning can be changed. Frames are published only while ``cam1:Acquire`` is 1,
at most every ``MIN_PERIOD`` s: caproto does not deliver a large array published unpaced.

Where it differs from AD on purpose: puts complete at once (``Acquire`` is no busy record);
the test pattern is drawn on the published (binned) frame, so MinX/MinY only limit the size;
``cam1:Pattern`` and ``cam1:Truncate`` (elements cut off the next frames, for bad-input tests)
are not AD records. Prints ``READY <prefix> <port>`` once serving, like ``devices.demo_ioc``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytest
from caproto import (
    AccessRights,
    ChannelAlarm,
    ChannelByte,
    ChannelDouble,
    ChannelFloat,
    ChannelInteger,
    ChannelShort,
    ChannelType,
)
from caproto.asyncio.server import Context
from caproto.server import PVGroup, pvproperty

# The demo IOC's runner helpers: same beacons, same quiet log, same exit with the test run.
from devices.demo_ioc import _exit_with_parent, _OnceForBeaconFailures, configure_beacons
from devices.procio import read_line
from tests.support.ioc import HOST, PROJECT_ROOT, START_TIMEOUT, IocProcess

# AD's enums, in AD's order (NDDataType_t, NDColorMode_t, ADImageMode, ADStatus).
DATA_TYPES = ["Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float32", "Float64"]
COLOR_MODES = ["Mono", "Bayer", "RGB1", "RGB2", "RGB3", "YUV444", "YUV422", "YUV421"]
IMAGE_MODES = ["Single", "Multiple", "Continuous"]
DETECTOR_STATES = ["Idle", "Acquire", "Readout", "Correct", "Saving", "Aborting", "Error", "Waiting",
                   "Initializing", "Disconnected", "Aborted"]
PATTERNS = ["Gradient", "Beam", "Constant"]
SERVED_COLOR_MODES = ("Mono", "Bayer", "RGB1", "RGB2", "RGB3")  # simDetector makes no YUV frames
RGB_MODES = ("RGB1", "RGB2", "RGB3")

MIN_PERIOD = 0.05  # s; frames at most 20 Hz per detector, whatever AcquirePeriod says
DEFAULT_PERIOD = 0.2
DEFAULT_SIZE = (64, 48)
MAX_SIZE = (1024, 1024)  # MaxSizeX_RBV, MaxSizeY_RBV: the simulated sensor
DEFAULT_MAX_ARRAY_BYTES = 10_000_000  # what tests/support/ioc.py gives the test clients
EPICS_EPOCH = 631152000.0  # 1990-01-01 in POSIX seconds; AD's TimeStamp counts from it

log = logging.getLogger(__name__)


class _ReadOnly:
    """Clients read and monitor the plugin's output, they do not write it."""

    def check_access(self, hostname: str, username: str) -> AccessRights:
        return AccessRights.READ


def _read_only(channel: type) -> type:
    return type(f"ReadOnly{channel.__name__}", (_ReadOnly, channel), {})


@dataclass(frozen=True)
class CaType:
    """How one AD data type travels: its numpy type, the signed/float type CA carries, the channel."""

    numpy: type[np.generic]
    wire: type[np.generic]
    channel: type
    ca_name: str


# CA has no unsigned types: UInt16/UInt32 arrive negative above the signed maximum, and DBR_CHAR
# is unsigned in libca, so pyepics gives Int8 as uint8. Int64/UInt64 have no CA type at all.
CA_TYPES: dict[str, CaType] = {
    "Int8": CaType(np.int8, np.uint8, _read_only(ChannelByte), "DBR_CHAR"),
    "UInt8": CaType(np.uint8, np.uint8, _read_only(ChannelByte), "DBR_CHAR"),
    "Int16": CaType(np.int16, np.int16, _read_only(ChannelShort), "DBR_SHORT"),
    "UInt16": CaType(np.uint16, np.int16, _read_only(ChannelShort), "DBR_SHORT"),
    "Int32": CaType(np.int32, np.int32, _read_only(ChannelInteger), "DBR_LONG"),
    "UInt32": CaType(np.uint32, np.int32, _read_only(ChannelInteger), "DBR_LONG"),
    "Float32": CaType(np.float32, np.float32, _read_only(ChannelFloat), "DBR_FLOAT"),
    "Float64": CaType(np.float64, np.float64, _read_only(ChannelDouble), "DBR_DOUBLE"),
}


# --- frames: pure functions, also used by the tests for the expected pixels -----------------

@dataclass(frozen=True)
class Geometry:
    """Region and binning after AD's clamping to the sensor; width/height are the published size."""

    min_x: int
    min_y: int
    size_x: int
    size_y: int
    bin_x: int
    bin_y: int

    @property
    def width(self) -> int:
        return self.size_x // self.bin_x

    @property
    def height(self) -> int:
        return self.size_y // self.bin_y


def clamp_geometry(min_x: int, min_y: int, size_x: int, size_y: int, bin_x: int, bin_y: int,
                   max_size: tuple[int, int] = MAX_SIZE) -> Geometry:
    """As ADSimDetector clamps: the region stays on the sensor, binning within the region."""
    mx = min(max(int(min_x), 0), max_size[0] - 1)
    my = min(max(int(min_y), 0), max_size[1] - 1)
    sx = min(max(int(size_x), 1), max_size[0] - mx)
    sy = min(max(int(size_y), 1), max_size[1] - my)
    return Geometry(mx, my, sx, sy, min(max(int(bin_x), 1), sx), min(max(int(bin_y), 1), sy))


def _planes(pattern: str, channels: int, width: int, height: int, frame: int) -> np.ndarray:
    """The pattern as floats in [0, 1], shape (channels, height, width)."""
    if pattern == "Constant":
        return np.full((channels, height, width), 0.5)
    if pattern == "Beam":  # a Gaussian spot circling the centre once every 40 frames
        yy, xx = np.mgrid[0:height, 0:width]
        angle = 2 * np.pi * (frame % 40) / 40
        cx, cy = width / 2 + width / 4 * np.cos(angle), height / 2 + height / 4 * np.sin(angle)
        sigma = max(1.0, min(width, height) / 10)
        beam = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        return np.repeat(beam[np.newaxis], channels, axis=0)
    if channels == 1:  # Gradient: dark left to bright right
        planes = np.repeat(np.linspace(0.0, 1.0, width)[np.newaxis, np.newaxis], height, axis=1)
    else:  # red left third, green middle, blue right third
        third = np.arange(width) * 3 // width
        planes = np.stack([np.repeat((third == c)[np.newaxis], height, axis=0) for c in range(3)]).astype(float)
    side = max(1, min(width, height) // 4)  # full-scale (white) square centred in the top-left quadrant
    x0, y0 = max(0, width // 4 - side // 2), max(0, height // 4 - side // 2)
    planes[:, y0:y0 + side, x0:x0 + side] = 1.0
    return planes


@functools.lru_cache(maxsize=8)
def _static_frame(pattern: str, color_mode: str, width: int, height: int, data_type: str) -> np.ndarray:
    frame = _make_frame(pattern, color_mode, width, height, data_type, 0)
    frame.flags.writeable = False  # shared between frames; caproto does not copy read-only arrays
    return frame


def make_frame(pattern: str, color_mode: str, width: int, height: int, data_type: str,
               frame: int = 0) -> np.ndarray:
    """One frame as AD lays it out: shape (ArraySize2, ArraySize1, ArraySize0), or 2-D for Mono/Bayer.

    Full scale is the type's maximum (signed types: 0..max, never negative), 1.0 for floats.
    RGB1 is (height, width, 3), RGB2 (height, 3, width), RGB3 (3, height, width). Read-only:
    all but Beam (which moves with ``frame``) are cached.
    """
    if pattern != "Beam":
        return _static_frame(pattern, color_mode, width, height, data_type)
    return _make_frame(pattern, color_mode, width, height, data_type, frame)


def _make_frame(pattern: str, color_mode: str, width: int, height: int, data_type: str,
                frame: int) -> np.ndarray:
    dtype = CA_TYPES[data_type].numpy
    rgb = color_mode in RGB_MODES
    planes = _planes(pattern, 3 if rgb else 1, width, height, frame)
    if np.issubdtype(dtype, np.integer):
        planes = np.round(planes * float(np.iinfo(dtype).max))
    values = planes.astype(dtype)
    if not rgb:
        return values[0]
    layout = {"RGB1": (1, 2, 0), "RGB2": (1, 0, 2), "RGB3": (0, 1, 2)}[color_mode]
    return np.ascontiguousarray(values.transpose(layout))


def array_dims(color_mode: str, width: int, height: int) -> tuple[int, int, int]:
    """(ArraySize0, ArraySize1, ArraySize2) as NDStdArrays reports them; 0 for an unused dimension."""
    return {"RGB1": (3, width, height), "RGB2": (width, 3, height),
            "RGB3": (width, height, 3)}.get(color_mode, (width, height, 0))


def max_elements(data_type: str, max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES) -> int:
    """ArrayData's element count (its NELM): the sensor's RGB frame, or what the clients' byte limit holds.

    libca drops any array larger than EPICS_CA_MAX_ARRAY_BYTES (plus 24 bytes) with one line on
    stderr and nothing to the caller; 128 bytes are left for the DBR_TIME metadata.
    """
    itemsize = np.dtype(CA_TYPES[data_type].wire).itemsize
    return min(3 * MAX_SIZE[0] * MAX_SIZE[1], (max_array_bytes - 128) // itemsize)


# --- the detector ------------------------------------------------------------------------------

def _enum(name: str, strings: Sequence[str], value: str, **kwargs: Any) -> pvproperty:
    return pvproperty(name=name, value=value, dtype=ChannelType.ENUM, enum_strings=list(strings), **kwargs)


def _ro(name: str, value: Any, **kwargs: Any) -> pvproperty:
    return pvproperty(name=name, value=value, read_only=True, **kwargs)


GEOMETRY_FIELDS = ("min_x", "min_y", "size_x", "size_y", "bin_x", "bin_y")


def detector_group(data_type: str, *, size: tuple[int, int] = DEFAULT_SIZE,
                   period: float = DEFAULT_PERIOD) -> type[PVGroup]:
    """One simulated detector of ``data_type``; a class per type as the initial values are class-level."""
    if data_type not in CA_TYPES:
        raise ValueError(f"{data_type} cannot be served over Channel Access")
    period = max(period, MIN_PERIOD)

    class Detector(PVGroup):
        acquire = _enum("cam1:Acquire", ["Done", "Acquire"], "Done")
        acquire_rbv = _enum("cam1:Acquire_RBV", ["Done", "Acquire"], "Done", read_only=True)
        acquire_time = pvproperty(name="cam1:AcquireTime", value=0.01, precision=3, units="s")
        acquire_time_rbv = _ro("cam1:AcquireTime_RBV", 0.01, precision=3, units="s")
        acquire_period = pvproperty(name="cam1:AcquirePeriod", value=period, precision=3, units="s",
                                    doc=f"Frame period; at least {MIN_PERIOD} s and AcquireTime.")
        acquire_period_rbv = _ro("cam1:AcquirePeriod_RBV", period, precision=3, units="s")
        image_mode = _enum("cam1:ImageMode", IMAGE_MODES, "Continuous")
        image_mode_rbv = _enum("cam1:ImageMode_RBV", IMAGE_MODES, "Continuous", read_only=True)
        num_images = pvproperty(name="cam1:NumImages", value=1)
        num_images_rbv = _ro("cam1:NumImages_RBV", 1)
        num_images_counter = _ro("cam1:NumImagesCounter_RBV", 0)
        detector_state = _enum("cam1:DetectorState_RBV", DETECTOR_STATES, "Idle", read_only=True)
        manufacturer = _ro("cam1:Manufacturer_RBV", "Simulated detector", dtype=ChannelType.STRING)
        model = _ro("cam1:Model_RBV", "ophydsite test AD IOC", dtype=ChannelType.STRING)
        max_size_x = _ro("cam1:MaxSizeX_RBV", MAX_SIZE[0])
        max_size_y = _ro("cam1:MaxSizeY_RBV", MAX_SIZE[1])
        min_x = pvproperty(name="cam1:MinX", value=0)
        min_x_rbv = _ro("cam1:MinX_RBV", 0)
        min_y = pvproperty(name="cam1:MinY", value=0)
        min_y_rbv = _ro("cam1:MinY_RBV", 0)
        size_x = pvproperty(name="cam1:SizeX", value=size[0])
        size_x_rbv = _ro("cam1:SizeX_RBV", size[0])
        size_y = pvproperty(name="cam1:SizeY", value=size[1])
        size_y_rbv = _ro("cam1:SizeY_RBV", size[1])
        bin_x = pvproperty(name="cam1:BinX", value=1)
        bin_x_rbv = _ro("cam1:BinX_RBV", 1)
        bin_y = pvproperty(name="cam1:BinY", value=1)
        bin_y_rbv = _ro("cam1:BinY_RBV", 1)
        color_mode = _enum("cam1:ColorMode", COLOR_MODES, "Mono", doc="Mono, Bayer, RGB1-3; YUV is refused.")
        color_mode_rbv = _enum("cam1:ColorMode_RBV", COLOR_MODES, "Mono", read_only=True)
        data_type_sp = _enum("cam1:DataType", DATA_TYPES, data_type, doc=f"Fixed to {data_type}.")
        data_type_rbv = _enum("cam1:DataType_RBV", DATA_TYPES, data_type, read_only=True)
        array_counter = pvproperty(name="cam1:ArrayCounter", value=0, doc="Write to reset the counter.")
        array_counter_rbv = _ro("cam1:ArrayCounter_RBV", 0)
        array_size_x = _ro("cam1:ArraySizeX_RBV", size[0])
        array_size_y = _ro("cam1:ArraySizeY_RBV", size[1])
        array_size_z = _ro("cam1:ArraySizeZ_RBV", 0)
        array_size_bytes = _ro("cam1:ArraySize_RBV", 0)
        pattern = _enum("cam1:Pattern", PATTERNS, "Gradient", doc="Not AD: the test pattern.")
        pattern_rbv = _enum("cam1:Pattern_RBV", PATTERNS, "Gradient", read_only=True)
        truncate = pvproperty(name="cam1:Truncate", value=0,
                              doc="Not AD: elements cut off the end of the next frames (0: whole).")

        plugin_type = _ro("image1:PluginType_RBV", "NDPluginStdArrays", dtype=ChannelType.STRING)
        enable_callbacks = _enum("image1:EnableCallbacks", ["Disable", "Enable"], "Enable")
        enable_callbacks_rbv = _enum("image1:EnableCallbacks_RBV", ["Disable", "Enable"], "Enable",
                                     read_only=True)
        ndimensions = _ro("image1:NDimensions_RBV", 2)
        array_size0 = _ro("image1:ArraySize0_RBV", size[0])
        array_size1 = _ro("image1:ArraySize1_RBV", size[1])
        array_size2 = _ro("image1:ArraySize2_RBV", 0)
        image_color_mode = _enum("image1:ColorMode_RBV", COLOR_MODES, "Mono", read_only=True)
        image_data_type = _enum("image1:DataType_RBV", DATA_TYPES, data_type, read_only=True)
        image_array_counter = _ro("image1:ArrayCounter_RBV", 0)
        unique_id = _ro("image1:UniqueId_RBV", 0)
        time_stamp = _ro("image1:TimeStamp_RBV", 0.0, precision=3,
                         doc="Frame time in seconds since the EPICS epoch (1990), as AD's NDArray.")

        def __init__(self, *args: Any, max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
                     autostart: bool = False, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # One alarm per PV: caproto's shared default would spread a refused put's alarm to all.
            for channel in self.pvdb.values():
                channel.alarm = ChannelAlarm()
            ca = CA_TYPES[data_type]
            self.max_elements = max_elements(data_type, max_array_bytes)
            extra = {"strip_null_terminator": False} if issubclass(ca.channel, ChannelByte) else {}
            initial = np.zeros(size[0] * size[1], dtype=ca.wire)  # AD's fresh waveform is empty; zeros are kinder
            # A short backlog: a slow client gets the newest frames, not a queue of stale megabytes.
            self.array_data = ca.channel(value=initial, max_length=self.max_elements,
                                         max_subscription_backlog=3, **extra)
            self.pvdb[f"{self.prefix}image1:ArrayData"] = self.array_data
            self.autostart = autostart
            self._task: asyncio.Task[None] | None = None

        def geometry(self, **override: int) -> Geometry:
            raw = {f: getattr(self, f).value for f in GEOMETRY_FIELDS} | override
            return clamp_geometry(**raw)

        async def _geometry_put(self, field: str, value: int) -> int:
            """Clamp like AD and show the result in every region setpoint (asyn:READBACK) and readback."""
            geo = self.geometry(**{field: int(value)})
            for name in GEOMETRY_FIELDS:
                new = getattr(geo, name)
                if name != field and getattr(self, name).value != new:
                    await getattr(self, name).write(new, verify_value=False)
                rbv = getattr(self, f"{name}_rbv")
                if rbv.value != new:
                    await rbv.write(new)
            return int(getattr(geo, field))

        @min_x.putter
        async def min_x(self, instance: Any, value: int) -> int:
            return await self._geometry_put("min_x", value)

        @min_y.putter
        async def min_y(self, instance: Any, value: int) -> int:
            return await self._geometry_put("min_y", value)

        @size_x.putter
        async def size_x(self, instance: Any, value: int) -> int:
            return await self._geometry_put("size_x", value)

        @size_y.putter
        async def size_y(self, instance: Any, value: int) -> int:
            return await self._geometry_put("size_y", value)

        @bin_x.putter
        async def bin_x(self, instance: Any, value: int) -> int:
            return await self._geometry_put("bin_x", value)

        @bin_y.putter
        async def bin_y(self, instance: Any, value: int) -> int:
            return await self._geometry_put("bin_y", value)

        @color_mode.putter
        async def color_mode(self, instance: Any, value: str) -> str:
            if value not in SERVED_COLOR_MODES:
                raise ValueError(f"ColorMode {value} is not simulated (only {', '.join(SERVED_COLOR_MODES)})")
            await self.color_mode_rbv.write(value)
            return value

        @data_type_sp.putter
        async def data_type_sp(self, instance: Any, value: str) -> str:
            if value != data_type:
                raise ValueError(f"this detector serves {data_type} only; use {{prefix}}{value}: instead")
            return value

        @acquire_time.putter
        async def acquire_time(self, instance: Any, value: float) -> float:
            value = max(float(value), 0.0)
            await self.acquire_time_rbv.write(value)
            return value

        @acquire_period.putter
        async def acquire_period(self, instance: Any, value: float) -> float:
            value = max(float(value), MIN_PERIOD)
            await self.acquire_period_rbv.write(value)
            return value

        @image_mode.putter
        async def image_mode(self, instance: Any, value: str) -> str:
            await self.image_mode_rbv.write(value)
            return value

        @num_images.putter
        async def num_images(self, instance: Any, value: int) -> int:
            value = max(int(value), 1)
            await self.num_images_rbv.write(value)
            return value

        @pattern.putter
        async def pattern(self, instance: Any, value: str) -> str:
            await self.pattern_rbv.write(value)
            return value

        @truncate.putter
        async def truncate(self, instance: Any, value: int) -> int:
            return max(int(value), 0)

        @array_counter.putter
        async def array_counter(self, instance: Any, value: int) -> int:
            await self.array_counter_rbv.write(int(value))
            return int(value)

        @enable_callbacks.putter
        async def enable_callbacks(self, instance: Any, value: str) -> str:
            await self.enable_callbacks_rbv.write(value)
            return value

        @acquire.putter
        async def acquire(self, instance: Any, value: str) -> str:
            if value == "Acquire":
                await self._start()
            else:
                await self._stop()
            return value

        @acquire.startup
        async def acquire(self, instance: Any, async_lib: Any) -> None:
            if self.autostart:
                await instance.write("Acquire")

        async def _start(self) -> None:
            if self._task is not None and not self._task.done():
                return
            await self.num_images_counter.write(0)
            await self.acquire_rbv.write("Acquire")
            await self.detector_state.write("Acquire")
            self._task = asyncio.create_task(self._acquisition())

        async def _stop(self) -> None:
            if self._task is not None:
                self._task.cancel()
                self._task = None
            await self._idle()

        async def _idle(self) -> None:
            if self.acquire_rbv.value != "Done":
                await self.acquire_rbv.write("Done")
            if self.detector_state.value != "Idle":
                await self.detector_state.write("Idle")

        async def _acquisition(self) -> None:
            """Frames on absolute deadlines (so the rate does not drift), until stopped or done."""
            deadline = time.monotonic()
            count = 0
            try:
                while True:
                    await self.publish_frame()
                    count += 1
                    await self.num_images_counter.write(count)
                    mode = self.image_mode.value
                    if mode == "Single" or (mode == "Multiple" and count >= self.num_images.value):
                        break
                    period = max(self.acquire_period.value, self.acquire_time.value, MIN_PERIOD)
                    deadline = max(deadline + period, time.monotonic())
                    await asyncio.sleep(deadline - time.monotonic())
            except Exception:
                log.exception("%s: acquisition failed", self.prefix)
                await self.detector_state.write("Error")
            self._task = None
            await self.acquire.write("Done", verify_value=False)
            await self._idle()

        async def publish_frame(self) -> None:
            """One frame: the detector's and the plugin's readbacks first, ArrayData last, as AD posts them."""
            geo, mode = self.geometry(), self.color_mode.value
            counter = self.array_counter_rbv.value + 1
            frame = make_frame(self.pattern.value, mode, geo.width, geo.height, data_type, counter)
            now = time.time()
            dims = array_dims(mode, geo.width, geo.height)
            await self.array_counter_rbv.write(counter, timestamp=now)
            await self._post(self.array_size_x, geo.width, now)
            await self._post(self.array_size_y, geo.height, now)
            await self._post(self.array_size_z, 3 if mode in RGB_MODES else 0, now)
            await self._post(self.array_size_bytes, frame.nbytes, now)
            if self.enable_callbacks.value != "Enable":
                return
            await self._post(self.ndimensions, 3 if mode in RGB_MODES else 2, now)
            for pv, dim in zip((self.array_size0, self.array_size1, self.array_size2), dims, strict=True):
                await self._post(pv, dim, now)
            await self._post(self.image_color_mode, mode, now)
            await self.image_array_counter.write(self.image_array_counter.value + 1, timestamp=now)
            await self.unique_id.write(counter, timestamp=now)
            await self.time_stamp.write(now - EPICS_EPOCH, timestamp=now)
            data = frame.reshape(-1).view(CA_TYPES[data_type].wire)[:self.max_elements]  # NELM cuts, as AD's
            if self.truncate.value:
                data = data[:max(1, len(data) - self.truncate.value)]
            await self.array_data.write(data, timestamp=now)

        @staticmethod
        async def _post(pv: Any, value: Any, now: float) -> None:
            """Write only changes: asyn posts a parameter's monitor when it changed."""
            if pv.value != value:
                await pv.write(value, timestamp=now)

    Detector.__name__ = Detector.__qualname__ = f"{data_type}Detector"
    return Detector


# --- the IOC process -----------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="AD_", help="base prefix, without ':'; P is {prefix}{DataType}:")
    parser.add_argument("--host", default="127.0.0.1", help="the one interface to serve on")
    parser.add_argument("--port", type=int, default=5064, help="CA server port (UDP and TCP)")
    parser.add_argument("--types", nargs="+", default=list(CA_TYPES), choices=list(CA_TYPES))
    parser.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", help="initial SizeX x SizeY")
    parser.add_argument("--period", type=float, default=DEFAULT_PERIOD, help="initial AcquirePeriod, s")
    parser.add_argument("--acquire", action="store_true", help="start acquiring at startup")
    parser.add_argument("--max-array-bytes", type=int,
                        default=int(os.environ.get("EPICS_CA_MAX_ARRAY_BYTES", DEFAULT_MAX_ARRAY_BYTES)),
                        help="the clients' EPICS_CA_MAX_ARRAY_BYTES; bounds ArrayData's element count")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the starting process dies (test runs killed before teardown)")
    args = parser.parse_args(argv)
    try:
        args.size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(args.size) == 2 and min(args.size) >= 1
    except (ValueError, AssertionError):
        parser.error("--size takes WIDTHxHEIGHT, e.g. 64x48")
    return args


async def serve(args: argparse.Namespace) -> None:
    """Build one detector per data type and serve them all from one CA server."""
    pvdb: dict[str, Any] = {}
    for data_type in args.types:
        group = detector_group(data_type, size=args.size, period=args.period)(
            prefix=f"{args.prefix}{data_type}:", max_array_bytes=args.max_array_bytes, autostart=args.acquire)
        pvdb.update(group.pvdb)
    ctx = Context(pvdb, [args.host])
    ctx.ca_server_port = args.port  # first TCP port tried, and the UDP search port

    async def announce(async_lib: Any) -> None:
        # caproto silently falls back to a random TCP port when the asked one is taken.
        if ctx.port != args.port:
            raise RuntimeError(f"TCP port {args.port} is in use (caproto took {ctx.port})")
        print(f"READY {args.prefix} {ctx.port}", flush=True)

    watcher = asyncio.create_task(_exit_with_parent()) if args.exit_with_parent else None
    try:
        await ctx.run(startup_hook=announce)
    finally:
        if watcher is not None:
            watcher.cancel()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("caproto.ctx").addFilter(_OnceForBeaconFailures())
    configure_beacons(args.host)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


class AdIocProcess(IocProcess):
    """The AD IOC as a subprocess on 127.0.0.1:``port``; ``pv("UInt16", "cam1:SizeX")`` names its PVs."""

    def pv(self, data_type: str, suffix: str) -> str:
        return f"{self.prefix}{data_type}:{suffix}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Spawn the IOC and return once it printed READY; raise with its stderr otherwise."""
        if self.running:
            raise RuntimeError(f"AD IOC {self.prefix} is already running")
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block the IOC
        cmd = [sys.executable, "-m", "tests.support.ad_ioc", "--prefix", self.prefix, "--host", HOST,
               "--port", str(self.port), "--exit-with-parent", *self.extra_args]
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=self._stderr)
        line = read_line(self.proc, timeout)
        if line != f"READY {self.prefix} {self.port}":
            self.stop()
            raise RuntimeError(f"AD IOC {self.prefix} on port {self.port} did not come up "
                               f"(stdout {line!r}):\n{self.stderr_text()}")


def searched_free_port() -> int:
    """A port of EPICS_CA_ADDR_LIST that nothing serves on now, last first.

    For test modules run before ``tests/conftest.py`` reserves a port for this IOC: libca
    searches only the ports listed when it started, and ``restartable_ioc``'s (listed last)
    is free between its tests.
    """
    for entry in reversed(os.environ.get("EPICS_CA_ADDR_LIST", "").split()):
        host, _, port = entry.rpartition(":")
        if host == HOST and port.isdigit():
            if free_ca_port_is(int(port)):
                return int(port)
    raise RuntimeError("no port of EPICS_CA_ADDR_LIST is free for the AD IOC")


def free_ca_port_is(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 is free for both TCP and UDP right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            tcp.bind((HOST, port))
            udp.bind((HOST, port))
        except OSError:
            return False
    return True


Scope = Literal["session", "package", "module", "class", "function"]


def ad_ioc_fixture(port: int | Callable[[], int] = searched_free_port, *, prefix: str = "AD_",
                   scope: Scope = "session", extra_args: Sequence[str] = (), name: str = "ad_ioc") -> Any:
    """A pytest fixture running the AD IOC on ``port`` (or the port a callable gives at setup).

    In a conftest: ``ad_ioc = ad_ioc_fixture(AD_IOC_PORT)``, the port also in EPICS_CA_ADDR_LIST.
    It needs the ``ca_repeater`` fixture of ``tests/conftest.py``.
    """

    @pytest.fixture(scope=scope, name=name)
    def _ad_ioc(ca_repeater: subprocess.Popen[bytes]) -> Iterator[AdIocProcess]:
        proc = AdIocProcess(prefix, port() if callable(port) else port, list(extra_args))
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()

    return _ad_ioc


if __name__ == "__main__":
    main()
