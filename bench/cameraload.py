"""Camera socket: frames/s delivered and server CPU for K viewers of one camera.

    .venv/bin/python bench/cameraload.py --viewers 1 5 20 --seconds 15
    .venv/bin/python bench/cameraload.py --viewers 5 --outputs 2   # half the viewers log, half linear

The camera is the built-in simulation at 1024x1024 UInt16, 30 frames a second
(``sim:1024x1024@30``); frames that large come from a ring of 32 made once, so the server's
CPU is the streaming work (decode, normalise, encode, send), not making frames. Viewers ask
for ``max_fps`` 30 and ``maxSize`` 1024 (no downscaling), read every message, and count the
JPEG frames they get for ``--seconds`` after a warm-up. The server's /api/v1/health reports
what the feed did: frames in, decoded, and encodes per output setting, so the encode count
per published frame is read from the server, not inferred. Prints one JSON line per K.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from loadgen import CpuWindow
from procs import HOST, RESULTS_DIR, Stack, health
from websockets.asyncio.client import connect

CAMERA = "sim:1024x1024@30"


async def viewer(url: str, log: bool, counts: list[int], index: int, stop: asyncio.Event) -> None:
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"camera": CAMERA, "max_fps": 30, "maxSize": 1024, "logNormalization": log}))
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                counts[index] += 1


def feed_stats(port: int) -> dict[str, Any]:
    cameras = health(port).get("cameras") or {}
    return next((v for k, v in cameras.items() if "1024x1024" in k), {})


async def scenario(port: int, server_pid: int, k: int, outputs: int, seconds: float, warmup: float) -> dict[str, Any]:
    url = f"ws://{HOST}:{port}/api/v1/camera-socket"
    counts = [0] * k
    stop = asyncio.Event()
    tasks = [asyncio.create_task(viewer(url, i % outputs == 0, counts, i, stop)) for i in range(k)]
    await asyncio.sleep(warmup)
    before, start_counts = feed_stats(port), list(counts)
    cpu = CpuWindow.begin({"server": server_pid})
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    after, end_counts = feed_stats(port), list(counts)
    usage = cpu.percent()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_viewer = [(e - s) / elapsed for s, e in zip(start_counts, end_counts, strict=True)]
    frames_in = after.get("frames_in", 0) - before.get("frames_in", 0)
    decoded = after.get("decoded", 0) - before.get("decoded", 0)
    encodes = {key: n - before.get("encoded", {}).get(key, 0) for key, n in after.get("encoded", {}).items()}
    return {
        "viewers": k, "outputs": outputs, "seconds": round(elapsed, 1),
        "published_fps": round(frames_in / elapsed, 1),
        "delivered_fps_per_viewer": {"min": round(min(per_viewer), 1), "mean": round(sum(per_viewer) / k, 1),
                                     "max": round(max(per_viewer), 1)},
        "decoded_per_published": round(decoded / frames_in, 3) if frames_in else None,
        "encodes_per_published_per_output": {key: round(n / frames_in, 3) for key, n in encodes.items()}
        if frames_in else {},
        "server_cpu_percent": usage["server"], "machine_percent": usage["machine"], "others_percent": usage["others"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--outputs", type=int, default=1, help="distinct output settings among the viewers")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    args = parser.parse_args()
    run_dir = RESULTS_DIR / f"camera-{time.strftime('%Y%m%d-%H%M%S')}"
    with Stack(run_dir) as stack:
        server = stack.start_server({"OAS_CAMERA_MAX_SIZE": "1024"})
        port = stack.server_ports[-1]
        for k in args.viewers:
            result = asyncio.run(scenario(port, server.pid, k, max(args.outputs, 1), args.seconds, args.warmup))
            print(json.dumps(result), flush=True)
            time.sleep(1.0)  # the feed ends with its last viewer; the next scenario starts it again


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
