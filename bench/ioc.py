"""Benchmark IOC: M float PVs updated at a fixed rate, one big waveform, channel diagnostics.

    python bench/ioc.py --prefix BENCH: --count 100 --rate 10 --host 127.0.0.1 --port 5064

Serves ``<prefix>v0 .. v<M-1>`` (floats), ``<prefix>sp0 .. sp<N-1>`` (floats no one else
writes, for the write benchmark), ``<prefix>big`` (a float waveform),
``<prefix>diag:channels`` (JSON {pvname: open CA channels}, computed on every read) and, with
``--motor``, ``<prefix>mtr``, the project's simulated motor record (-50..50 mm at 10 mm/s,
RBV written at 20 Hz while it moves, each write stamped with its time), and
prints ``READY <prefix> <port>`` on stdout once serving. Each value carries the time it was
published as its timestamp, so a client's receive time minus the timestamp is the latency
of everything in between. Updates run on an absolute schedule at a bounded rate: a caproto
IOC that publishes unthrottled delivers nothing. Client sockets have TCP_NODELAY
(devices/demo/ioc.py, ``run_context``); the IOC exits when its parent dies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from caproto import ChannelDouble, ChannelType
from caproto.server import PVGroup, pvproperty

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from devices.demo.ioc import DemoContext, run_context, run_ioc  # noqa: E402 - needs the path above
from devices.demo.ioc_pvs import BigWave  # noqa: E402
from devices.demo.motor import motor_record_group  # noqa: E402

# The bench motor is the demo IOC's mtr1 (devices/demo/ioc_pvs.py).
MOTOR = {"units": "mm", "low": -50.0, "high": 50.0, "velocity": 10.0}


async def _sleep_until(deadline: float) -> None:
    """Sleep to an absolute monotonic deadline, so the rate does not drift with work done."""
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


class BenchPVs(PVGroup):
    """The diagnostics PVs; the scalars and the waveform are added to ``pvdb`` at run time."""

    diag_channels = pvproperty(name="diag:channels", value="{}", dtype=ChannelType.CHAR,
                               max_length=262144, read_only=True, max_subscription_backlog=10,
                               doc="JSON {pvname: open CA channels}, computed on read.")
    ticks = pvproperty(name="diag:ticks", value=0, dtype=int, read_only=True,
                       doc="Scalar update rounds done; the publisher runs as its startup hook.")
    late = pvproperty(name="diag:late", value=0, dtype=int, read_only=True,
                      doc="Rounds that started over one period late (the IOC fell behind).")

    def __init__(self, *args: Any, count: int, rate: float, big_size: int, big_rate: float,
                 setpoints: int = 0, motor: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context: DemoContext | None = None  # set once the server exists
        self.period = 1.0 / rate
        self.scalars = [ChannelDouble(value=0.0, precision=3) for _ in range(count)]
        for index, channel in enumerate(self.scalars):
            self.pvdb[f"{self.prefix}v{index}"] = channel
        for index in range(setpoints):
            self.pvdb[f"{self.prefix}sp{index}"] = ChannelDouble(value=0.0, precision=3)
        self.pvdb[f"{self.prefix}big"] = BigWave(big_size, big_rate)
        if motor:  # its own group; the server context runs its startup hook (the motion loop)
            self.motor = motor_record_group(**MOTOR)(prefix=f"{self.prefix}mtr")
            self.pvdb.update(self.motor.pvdb)

    @ticks.startup
    async def ticks(self, instance: Any, async_lib: Any) -> None:
        """Write every scalar once per period, each stamped with its own publish time."""
        start = time.monotonic()
        tick = 0
        late = 0
        while True:
            tick += 1
            for index, channel in enumerate(self.scalars):
                value = tick + index / 1000.0
                await channel.write(value, timestamp=time.time())
            await instance.write(tick)
            deadline = start + tick * self.period
            if time.monotonic() > deadline + self.period:
                late += 1
                await self.late.write(late)
            await _sleep_until(deadline)

    @diag_channels.getter
    async def diag_channels(self, instance: Any) -> str:
        counts = self.context.channel_counts() if self.context is not None else {}
        return json.dumps(dict(sorted(counts.items())))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prefix", default="BENCH:")
    parser.add_argument("--count", type=int, default=10, help="number of float PVs (M)")
    parser.add_argument("--rate", type=float, default=10.0, help="updates per second of each PV (R)")
    parser.add_argument("--host", default="127.0.0.1", help="the one interface to serve on")
    parser.add_argument("--port", type=int, default=5064, help="CA server port (UDP and TCP)")
    parser.add_argument("--setpoints", type=int, default=0, help="number of float PVs sp<i> to write")
    parser.add_argument("--big-size", type=int, default=200000, help="elements of <prefix>big")
    parser.add_argument("--big-rate", type=float, default=10.0, help="updates per second of <prefix>big")
    parser.add_argument("--motor", action="store_true", help="also serve the motor record <prefix>mtr")
    args = parser.parse_args(argv)
    if args.count < 0 or args.setpoints < 0 or not 0 < args.rate <= 1000:
        parser.error("--count and --setpoints must be >= 0 and --rate in (0, 1000]")
    if args.big_size < 1 or not 0 < args.big_rate <= 100:
        parser.error("--big-size must be >= 1 and --big-rate in (0, 100]")
    return args


async def serve(args: argparse.Namespace) -> None:
    """Build the PVs and the server context, then serve until cancelled."""
    group = BenchPVs(prefix=args.prefix, count=args.count, rate=args.rate, big_size=args.big_size,
                     big_rate=args.big_rate, setpoints=args.setpoints, motor=args.motor)
    ctx = DemoContext(group.pvdb, [args.host])
    ctx.ca_server_port = args.port  # first TCP port tried, and the UDP search port
    group.context = ctx
    await run_context(ctx, port=args.port, prefix=args.prefix, exit_with_parent=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_ioc(lambda: serve(args), args.host)
    sys.exit(0)


if __name__ == "__main__":
    main()
