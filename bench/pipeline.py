"""The server's loop-side cost per PV update, without Channel Access or a network.

    .venv/bin/python bench/pipeline.py --pvs 2000 --rate 10 --seconds 10 [--profile]

M simulated PVs (tests/support/sim.py) behind the real bridge entries, publisher, hub,
pv-socket session and mailbox, one client; every 1/R s all M PVs get a new value (as a C
IOC's periodic scan posts them) through the bridge's inbox. The client's frames go through
the server's frame encoder (ophydsite/ws_frames.py; permessage-deflate with ``--deflate``,
as with OAS_WS_COMPRESSION=true; off by default, as in the server). Prints the
process CPU per delivered update: the floor of what the server spends on the loop, with
none of the GIL hand-offs a CA callback thread adds (compare bench/loadgen.py --ioc c).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ophydsite.settings")

import django  # noqa: E402

django.setup()
logging.getLogger("devices").setLevel(logging.WARNING)  # no line per opened channel

from websockets.extensions.permessage_deflate import PerMessageDeflate  # noqa: E402
from websockets.protocol import OPEN  # noqa: E402
from websockets.server import ServerProtocol  # noqa: E402

from devices.sockets.pv_session import PvSession  # noqa: E402
from devices.sources.inbox import inbox_for  # noqa: E402
from devices.sources.source import ValueEvent  # noqa: E402
from ophydsite.ws_frames import text_frames  # noqa: E402
from ophydsite.ws_protocol import DEFLATE_LEVEL  # noqa: E402
from tests.support.sim import SimSource  # noqa: E402
from tests.support.stack import Client, Stack  # noqa: E402


class Wire:
    """A client's socket as far as the server's CPU goes: frames encoded, then dropped."""

    def __init__(self, deflate: bool) -> None:
        self.conn = ServerProtocol()
        self.conn.state = OPEN
        if deflate:  # the server's settings (ophydsite/ws_protocol.py)
            self.conn.extensions = [PerMessageDeflate(False, False, 12, 12, {"memLevel": 5, "level": DEFLATE_LEVEL})]
        self.frames = 0
        self.updates = 0
        self.bytes = 0

    async def send(self, text: str) -> None:
        self.send_many_now([text])

    async def send_many(self, texts: list[str]) -> None:
        self.send_many_now(texts)

    def send_many_now(self, texts: list[str]) -> None:
        frames = text_frames(self.conn, texts)
        self.bytes += len(frames) if frames is not None else 0
        self.frames += len(texts)
        self.updates += sum(text.count('{"pv":') for text in texts)  # value messages, batched or not


async def run(args: argparse.Namespace) -> dict[str, float]:
    names = [f"SIM:v{i}" for i in range(args.pvs)]
    async with Stack(SimSource, scalar_rate_hz=args.cap) as stack:
        wire = Wire(args.deflate)
        client = Client(PvSession, stack, send=wire.send)
        client.session.mailbox._send_many = wire.send_many  # as uvicorn's send_texts offers it
        if args.batch_ms:
            await client.send({"action": "options", "batch_ms": args.batch_ms})
        for i in range(0, len(names), 500):
            await client.send({"action": "subscribe", "pvs": names[i:i + 500]})
        loop = asyncio.get_running_loop()
        while not all(n in SimSource.registry and SimSource.registry[n].opened for n in names):
            await asyncio.sleep(0.05)
        for name in names:
            SimSource.registry[name].connect()
        await asyncio.sleep(1.0)
        inbox = inbox_for(loop)
        sinks = [SimSource.registry[n].sink.source_value for n in names]
        period = 1.0 / args.rate

        async def ioc(seconds: float) -> int:
            posted, tick, start = 0, 0, loop.time()
            while loop.time() - start < seconds:
                stamp = time.time()
                for sink in sinks:  # as the CA thread posts them: one inbox entry per event
                    inbox.post(sink, ValueEvent(float(tick), stamp, 0, 0))
                posted += len(sinks)
                tick += 1
                await asyncio.sleep(max(0.0, start + tick * period - loop.time()))
            return posted

        await ioc(1.0)  # warm-up
        frames0, updates0 = wire.frames, wire.updates
        profile = cProfile.Profile() if args.profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        posted = await ioc(args.seconds)
        await asyncio.sleep(0.2)
        if profile:
            profile.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        delivered, frames = wire.updates - updates0, wire.frames - frames0
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return {"pvs": args.pvs, "rate_hz": args.rate, "batch_ms": args.batch_ms, "deflate": args.deflate,
                "posted": posted, "delivered": delivered, "frames": frames,
                "cpu_pct": round(100 * cpu / wall, 1), "us_per_update": round(1e6 * cpu / max(delivered, 1), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pvs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cap", type=float, default=10.0, help="OAS_SCALAR_RATE_HZ")
    parser.add_argument("--deflate", action="store_true", help="permessage-deflate (OAS_WS_COMPRESSION)")
    parser.add_argument("--batch-ms", type=float, default=0, help="the client's batch window (options action)")
    parser.add_argument("--profile", action="store_true", help="cProfile the window (slower; for where, not how much)")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
