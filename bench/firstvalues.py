"""How long after subscribing every PV has its first value: one client, M PVs, C IOC.

    .venv/bin/python bench/firstvalues.py --pvs 2000 [--runs 3] [--server-warm-s 1]

A fresh IOC (bench/cioc.py, M calc records at 10 Hz) and server per run; the client
connects, sends the subscribe in requests of 500 names and records when each PV's first
metadata and first value arrive. Prints one JSON line per run: the subscribe replies' times
and the 10th/50th/90th/100th percentile of first-value times, in seconds from the subscribe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from procs import HOST, RESULTS_DIR, Stack
from websockets.asyncio.client import connect


def quantiles(times: dict[str, float]) -> list[float | None]:
    values = sorted(times.values())
    if not values:
        return [None] * 4
    return [round(values[int(q * (len(values) - 1))], 2) for q in (0.1, 0.5, 0.9, 1.0)]


async def probe(port: int, count: int, timeout: float) -> dict[str, Any]:
    names = [f"BENCH:v{i}" for i in range(count)]
    async with connect(f"ws://{HOST}:{port}/api/v1/pv-socket", max_size=None) as ws:
        t0 = time.monotonic()
        for i in range(0, count, 500):
            await ws.send(json.dumps({"action": "subscribe", "pvs": names[i:i + 500]}))
        meta: dict[str, float] = {}
        value: dict[str, float] = {}
        replies: list[float] = []
        while len(value) < count and time.monotonic() - t0 < timeout:
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.monotonic() - t0
            message = json.loads(raw)
            for m in message if isinstance(message, list) else [message]:
                if m.get("action") == "subscribe":
                    replies.append(round(now, 2))
                elif m.get("sub_type") == "meta":
                    meta.setdefault(m["pv"], now)
                elif "value" in m and "pv" in m:
                    value.setdefault(m["pv"], now)
        return {"pvs": count, "replies_s": replies, "with_meta": len(meta), "with_value": len(value),
                "first_value_s_p10_p50_p90_p100": quantiles(value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pvs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--server-warm-s", type=float, default=1.0, help="wait after the server answers")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    for run in range(args.runs):
        with Stack(run_dir=RESULTS_DIR / f"firstvalues-{int(time.time())}-{run}") as stack:
            stack.start_ca(count=args.pvs, rate=10, ioc="c")
            stack.start_server({})
            time.sleep(args.server_warm_s)
            print(json.dumps(asyncio.run(probe(stack.server_ports[0], args.pvs, args.timeout))), flush=True)


if __name__ == "__main__":
    main()
