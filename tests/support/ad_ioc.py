"""A caproto IOC that looks like an EPICS Area Detector: ADSimDetector plus one NDStdArrays plugin.

    python -m tests.support.ad_ioc --prefix AD_ --host 127.0.0.1 --port 5064

A CA channel's type is fixed, so one detector is served per data type, each below its own
prefix P = ``{prefix}{DataType}:`` with AD's records below that: ``AD_UInt16:cam1:SizeX``,
``AD_UInt16:image1:ArrayData``. P is one name segment (keep ':' out of ``--prefix``):
ophyd-websocket takes the segment before the first ':' of the ArrayData name as the prefix of
``cam1:`` (``camera/area_detector.py`` also understands ``$(P)image1:ArrayData`` with colons in P).
Frame patterns, enums and CA types are in ``ad_frames.py``. Each detector's DataType is fixed; ColorMode,
the region and binning can be changed. Frames are published only while ``cam1:Acquire`` is 1,
at most every ``MIN_PERIOD`` s: caproto does not deliver a large array published unpaced.

Where it differs from AD on purpose: puts complete at once (``Acquire`` is no busy record);
the test pattern is drawn on the published (binned) frame, so MinX/MinY only limit the size;
``cam1:Pattern`` and ``cam1:Truncate`` (elements cut off the next frames, for bad-input tests)
are not AD records. Prints ``READY <prefix> <port>`` once serving, like ``devices.demo.ioc``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from caproto import (
    ChannelAlarm,
    ChannelByte,
    ChannelType,
)
from caproto.asyncio.server import Context
from caproto.server import PVGroup, pvproperty

# The demo IOC's runner: same beacons, same quiet log, same READY line and exit with the test run.
from devices.demo.ioc import run_context, run_ioc
from tests.support.ad_frames import (
    CA_TYPES,
    COLOR_MODES,
    DATA_TYPES,
    DEFAULT_MAX_ARRAY_BYTES,
    DEFAULT_PERIOD,
    DEFAULT_SIZE,
    DETECTOR_STATES,
    EPICS_EPOCH,
    IMAGE_MODES,
    MAX_SIZE,
    MIN_PERIOD,
    PATTERNS,
    RGB_MODES,
    SERVED_COLOR_MODES,
    Geometry,
    array_dims,
    clamp_geometry,
    make_frame,
    max_elements,
)

log = logging.getLogger(__name__)

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

    await run_context(ctx, port=args.port, prefix=args.prefix, exit_with_parent=args.exit_with_parent)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_ioc(lambda: serve(args), args.host)


if __name__ == "__main__":
    main()
