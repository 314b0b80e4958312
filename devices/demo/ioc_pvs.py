"""The demo IOC's PVs: motors, periodic signals and PVs that misbehave on purpose.

Each PV exists to exercise one behaviour of the web server (units and limits,
alarms, slow or refused puts, disconnects, big arrays). Every periodic update
runs at a fixed, bounded rate: caproto falls over if arrays are published
unthrottled.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any, Protocol

import numpy as np
from caproto import AccessRights, AlarmSeverity, AlarmStatus, ChannelAlarm, ChannelDouble, ChannelType
from caproto.server import PVGroup, SubGroup, pvproperty

from .motor import motor_record_group

MOTOR_TICK = 0.1  # s; readback update period while moving (10 Hz)
SLOW_PUT_SECONDS = 2.0
TEMP_MINOR = 30.0
TEMP_MAJOR = 50.0
LONGTEXT = "Grüße aus dem Demo-IOC: µm, °C, ✓ (UTF-8 in a DBR_CHAR array)"


class ChannelRegistry(Protocol):
    """What the PVs need from the server: channel counts and per-PV availability."""

    def channel_counts(self) -> dict[str, int]: ...

    async def set_available(self, pvname: str, available: bool) -> None: ...


def motor_group(units: str, low: float, high: float, velocity: float) -> type[PVGroup]:
    """A motor-like sp/rbv/moving triple; one class per motor as limits are class-level."""

    class Motor(PVGroup):
        sp = pvproperty(name="sp", value=0.0, dtype=float, units=units, precision=3,
                        lower_ctrl_limit=low, upper_ctrl_limit=high,
                        lower_disp_limit=low, upper_disp_limit=high,
                        doc="Setpoint; writes outside the control limits are refused.")
        rbv = pvproperty(name="rbv", value=0.0, dtype=float, units=units, precision=3,
                         lower_disp_limit=low, upper_disp_limit=high, read_only=True,
                         doc=f"Readback; moves toward sp at {velocity} {units}/s.")
        moving = pvproperty(name="moving", value=0, dtype=int, read_only=True)
        hlm = pvproperty(name="hlm", value=high, dtype=float, units=units, precision=3,
                         doc="High limit: writing it changes sp's upper control limit (a metadata change).")

        @hlm.putter
        async def hlm(self, instance: Any, value: float) -> float:
            await self.sp.write_metadata(upper_ctrl_limit=value)
            return value

        @sp.putter
        async def sp(self, instance: Any, value: float) -> float:
            if value != self.rbv.value:
                await self.moving.write(1)
            return value

        @rbv.startup
        async def rbv(self, instance: Any, async_lib: Any) -> None:
            step = velocity * MOTOR_TICK
            while True:
                await async_lib.sleep(MOTOR_TICK)
                target, pos = self.sp.value, instance.value
                if target == pos:
                    continue
                pos = target if abs(target - pos) <= step else pos + math.copysign(step, target - pos)
                await instance.write(pos)
                if pos == target:
                    await self.moving.write(0)

    return Motor


class BigWave(ChannelDouble):
    """A float array of run-time size, republished at a fixed rate to load slow clients."""

    def __init__(self, size: int, rate: float) -> None:
        # A short backlog: a slow client gets the newest arrays, not 1000 stale ones.
        super().__init__(value=np.zeros(size), max_length=size, precision=3,
                         max_subscription_backlog=10)
        self._x = np.linspace(0.0, 4 * math.pi, size)
        self._period = 1.0 / rate

    def check_access(self, hostname: str, username: str) -> AccessRights:
        return AccessRights.READ

    async def server_startup(self, async_lib: Any) -> None:
        """Picked up by the caproto Context like a pvproperty startup hook.

        Ticks on absolute deadlines so the rate does not drift with the time a write takes
        (the benchmark's IOC relies on the exact rate).
        """
        start = time.monotonic()
        tick = 0
        while True:
            await self.write(np.sin(self._x + time.time()), timestamp=time.time())
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * self._period - time.monotonic()))


class DemoPVs(PVGroup):
    """All PVs of the demo IOC, below one prefix."""

    m1 = SubGroup(motor_group("mm", -100.0, 100.0, 5.0), prefix="m1:")
    m2 = SubGroup(motor_group("deg", -180.0, 180.0, 20.0), prefix="m2:")
    m3 = SubGroup(motor_group("um", 0.0, 1000.0, 50.0), prefix="m3:")
    # Real motor records (TST:mtr1, TST:mtr1.RBV, ...), for ophyd's EpicsMotor.
    mtr1 = SubGroup(motor_record_group(units="mm", low=-50.0, high=50.0, velocity=10.0), prefix="mtr1")
    mtr2 = SubGroup(motor_record_group(units="deg", low=0.0, high=360.0, velocity=45.0), prefix="mtr2")

    sine = pvproperty(value=0.0, dtype=float, units="V", precision=3,
                      lower_disp_limit=-1.0, upper_disp_limit=1.0, read_only=True)
    counter = pvproperty(value=0, dtype=int, read_only=True)
    mode = pvproperty(value="Off", dtype=ChannelType.ENUM, enum_strings=["Off", "On", "Fault"])
    label = pvproperty(value="hello", dtype=ChannelType.STRING)
    longtext = pvproperty(value=LONGTEXT, dtype=ChannelType.CHAR, max_length=256,
                          string_encoding="utf-8")
    wave = pvproperty(value=[0.0] * 100, dtype=float, max_length=100, read_only=True)
    iwave = pvproperty(value=list(range(16)), dtype=int, max_length=16, read_only=True)
    ro = pvproperty(value=42, dtype=int, read_only=True)
    temp = pvproperty(value=20.0, dtype=float, units="degC", precision=1,
                      upper_warning_limit=TEMP_MINOR, upper_alarm_limit=TEMP_MAJOR,
                      doc="Above 30 MINOR/HIGH, above 50 MAJOR/HIHI.")
    slow = pvproperty(value=0.0, dtype=float, precision=3,
                      doc=f"Put completes {SLOW_PUT_SECONDS} s after the write.")
    refuse = pvproperty(value=0.0, dtype=float, doc="Every write fails.")
    clamp = pvproperty(value=0.0, dtype=float, precision=3,
                       lower_ctrl_limit=-10.0, upper_ctrl_limit=10.0,
                       doc="Declares -10..10 but silently stores the value clamped to 0..5.")
    flaky = pvproperty(value=0.0, dtype=float, precision=3, read_only=True)
    flaky_online = pvproperty(name="flaky:online", value=1, dtype=int,
                              doc="Write 0 to drop every channel to flaky, 1 to serve it again.")
    diag_channels = pvproperty(name="diag:channels", value="{}", dtype=ChannelType.CHAR,
                               max_length=65536, read_only=True,
                               max_subscription_backlog=10,
                               doc="JSON {pvname: open CA channels}, computed on read.")

    def __init__(self, *args: Any, bigwave_size: int = 10000, bigwave_rate: float = 10.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # caproto gives all pvproperties of a group without an alarm_group one shared
        # ChannelAlarm: temp's alarm would show on every PV and the next sine write clear it.
        for channel in self.pvdb.values():
            channel.alarm = ChannelAlarm()
        self.registry: ChannelRegistry | None = None  # set by the server once it exists
        self.pvdb[f"{self.prefix}bigwave"] = BigWave(bigwave_size, bigwave_rate)

    @sine.scan(period=0.1)
    async def sine(self, instance: Any, async_lib: Any) -> None:
        await instance.write(math.sin(2 * math.pi * 0.2 * time.time()))

    @counter.scan(period=1.0)
    async def counter(self, instance: Any, async_lib: Any) -> None:
        await instance.write(instance.value + 1)

    @wave.scan(period=0.5)
    async def wave(self, instance: Any, async_lib: Any) -> None:
        x = np.linspace(0.0, 2 * math.pi, 100)
        await instance.write(np.sin(x + time.time()))

    @iwave.scan(period=0.5)
    async def iwave(self, instance: Any, async_lib: Any) -> None:
        await instance.write(np.roll(np.asarray(instance.value), 1))

    @temp.putter
    async def temp(self, instance: Any, value: float) -> float:
        # Set explicitly: caproto's own limit check would also flag LOLO at <= 0.
        if value > TEMP_MAJOR:
            instance.status, instance.severity = AlarmStatus.HIHI, AlarmSeverity.MAJOR_ALARM
        elif value > TEMP_MINOR:
            instance.status, instance.severity = AlarmStatus.HIGH, AlarmSeverity.MINOR_ALARM
        else:
            instance.status, instance.severity = AlarmStatus.NO_ALARM, AlarmSeverity.NO_ALARM
        return value

    @slow.putter
    async def slow(self, instance: Any, value: float) -> float:
        await asyncio.sleep(SLOW_PUT_SECONDS)
        return value

    @refuse.putter
    async def refuse(self, instance: Any, value: float) -> float:
        raise PermissionError("refuse never accepts a write")

    @clamp.putter
    async def clamp(self, instance: Any, value: float) -> float:
        return min(max(value, 0.0), 5.0)

    @flaky.scan(period=1.0)
    async def flaky(self, instance: Any, async_lib: Any) -> None:
        await instance.write(round(instance.value + 0.1, 3))

    @flaky_online.putter
    async def flaky_online(self, instance: Any, value: int) -> int:
        if value not in (0, 1):
            raise ValueError("flaky:online takes 0 or 1")
        if self.registry is not None:
            await self.registry.set_available(self.flaky.pvname, bool(value))
        return value

    @diag_channels.getter
    async def diag_channels(self, instance: Any) -> str:
        counts = self.registry.channel_counts() if self.registry is not None else {}
        return json.dumps(dict(sorted(counts.items())))
