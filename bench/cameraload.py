"""Camera socket: frames/s delivered and server CPU for K viewers of one camera.

    .venv/bin/python bench/cameraload.py --viewers 1 5 20 --seconds 15
    .venv/bin/python bench/cameraload.py --viewers 5 --outputs 2   # half the viewers log, half linear
    .venv/bin/python bench/cameraload.py --source ca --rate 10 --viewers 1 10   # CA waveform, C IOC
    .venv/bin/python bench/cameraload.py --source pva --rate 10 --viewers 1 10  # NTNDArray over PVA

``--source sim`` (default): the built-in simulation at 1024x1024 UInt16, 30 frames a second
(``sim:1024x1024@30``); frames that large come from a ring of 32 made once, so the server's
CPU is the streaming work (decode, normalise, encode, send), not making frames.
``--source ca``: an Area Detector look-alike over Channel Access, bench/cioc.py ``--image``
(``BENCH:image1:ArrayData``, a 16-bit waveform, and its NDStdArrays readbacks), viewers asking
for ``{"imageArray_PV": "BENCH:image1:ArrayData"}``. ``--source pva``: an NTNDArray over PV
Access from bench/pvaimage.py (p4p server, isolated ports), viewers asking for
``{"imageArray_PV": "pva://BENCH:image"}``. Both make frames of ``--size`` (UInt16 Mono) at
``--rate`` from a ring of 8, and the source process's CPU is reported as ``source_cpu_percent``. Viewers ask
for ``max_fps`` 30 and ``maxSize`` 1024 (no downscaling), read every message, and count the
JPEG frames they get for ``--seconds`` after a warm-up. The server's /api/v1/health reports
what the feed did: frames in, decoded, and encodes per output setting, so the encode count
per published frame is read from the server, not inferred. Prints one JSON line per K.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from loadgen import CpuWindow
from procs import HOST, RESULTS_DIR, Stack, health, read_line
from websockets.asyncio.client import connect

CA_ARRAY = "BENCH:image1:ArrayData"
PVA_ARRAY = "BENCH:image"
START_TIMEOUT = 30.0


def camera_request(source: str, size: str, rate: float) -> tuple[dict[str, Any], str]:
    """The viewers' first message's camera fields, and what names its feed in /health."""
    if source == "ca":
        return {"imageArray_PV": CA_ARRAY}, CA_ARRAY
    if source == "pva":
        return {"imageArray_PV": "pva://" + PVA_ARRAY}, PVA_ARRAY
    name = f"sim:{size}@{rate:g}"
    return {"camera": name}, size


async def viewer(url: str, request: dict[str, Any], max_fps: float, log: bool, counts: list[int],
                 index: int, stop: asyncio.Event) -> None:
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({**request, "max_fps": max_fps, "maxSize": 1024, "logNormalization": log}))
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                counts[index] += 1


def feed_stats(port: int, match: str) -> dict[str, Any]:
    cameras = health(port).get("cameras") or {}
    return next((v for k, v in cameras.items() if match in k), {})


async def scenario(args: argparse.Namespace, port: int, pids: dict[str, int], k: int) -> dict[str, Any]:
    url = f"ws://{HOST}:{port}/api/v1/camera-socket"
    request, match = camera_request(args.source, args.size, args.rate)
    outputs = max(args.outputs, 1)
    counts = [0] * k
    stop = asyncio.Event()
    tasks = [asyncio.create_task(viewer(url, request, args.max_fps, i % outputs == 0, counts, i, stop))
             for i in range(k)]
    await asyncio.sleep(args.warmup)
    before, start_counts = feed_stats(port, match), list(counts)
    cpu = CpuWindow.begin(pids)
    started = time.monotonic()
    await asyncio.sleep(args.seconds)
    elapsed = time.monotonic() - started
    after, end_counts = feed_stats(port, match), list(counts)
    usage = cpu.percent()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_viewer = [(e - s) / elapsed for s, e in zip(start_counts, end_counts, strict=True)]
    frames_in = after.get("frames_in", 0) - before.get("frames_in", 0)
    decoded = after.get("decoded", 0) - before.get("decoded", 0)
    encodes = {key: n - before.get("encoded", {}).get(key, 0) for key, n in after.get("encoded", {}).items()}
    return {
        "source": args.source, "size": args.size, "rate_hz": args.rate,
        "viewers": k, "outputs": outputs, "seconds": round(elapsed, 1),
        "published_fps": round(frames_in / elapsed, 1),
        "delivered_fps_per_viewer": {"min": round(min(per_viewer), 1), "mean": round(sum(per_viewer) / k, 1),
                                     "max": round(max(per_viewer), 1)},
        "decoded_per_published": round(decoded / frames_in, 3) if frames_in else None,
        "encodes_per_published_per_output": {key: round(n / frames_in, 3) for key, n in encodes.items()}
        if frames_in else {},
        "server_cpu_percent": usage["server"], "source_cpu_percent": usage.get("source"),
        "loadgen_cpu_percent": usage["loadgen"],
        "machine_percent": usage["machine"], "others_percent": usage["others"],
        "feed_errors": after.get("errors", 0) - before.get("errors", 0),
    }


def start_source(stack: Stack, args: argparse.Namespace) -> int | None:
    """The camera's source process (C IOC or p4p server); its pid, None for the simulation.

    Sets ``stack.env`` so the server started next reaches that source and nothing else."""
    if args.source == "ca":
        stack.start_ca(count=0, rate=10, big_size=1, big_rate=1.0,
                       ioc_args=["--image", args.size, "--image-rate", f"{args.rate:g}"])
        return stack.proc("ioc").pid
    if args.source == "pva":
        proc = stack.spawn("pvaimage", [sys.executable, str(Path(__file__).resolve().parent / "pvaimage.py"),
                                        "--name", PVA_ARRAY, "--size", args.size, "--rate", f"{args.rate:g}"],
                           {}, stdout_pipe=True)
        line = read_line(proc.popen, START_TIMEOUT)
        if not line.startswith("READY "):
            raise RuntimeError(f"bench/pvaimage.py did not come up (stdout {line!r}):\n{proc.log_text()}")
        stack.env = dict(json.loads(line[len("READY "):]))
        return proc.pid
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--outputs", type=int, default=1, help="distinct output settings among the viewers")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--source", choices=["sim", "ca", "pva"], default="sim",
                        help="sim: built-in simulation; ca: C IOC waveform (AD's NDStdArrays); "
                             "pva: NTNDArray from a p4p server")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second the source makes")
    parser.add_argument("--size", default="1024x1024", help="WxH of the UInt16 Mono frames")
    parser.add_argument("--max-fps", type=float, default=30.0, help="max_fps the viewers ask for")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON lines to this file")
    args = parser.parse_args()
    run_dir = RESULTS_DIR / f"camera-{args.source}-{time.strftime('%Y%m%d-%H%M%S')}"
    with Stack(run_dir) as stack:
        source_pid = start_source(stack, args)
        server = stack.start_server({"OAS_CAMERA_MAX_SIZE": "1024"})
        port = stack.server_ports[-1]
        pids = {"server": server.pid, "loadgen": os.getpid()}
        if source_pid is not None:
            pids["source"] = source_pid
        for k in args.viewers:
            result = asyncio.run(scenario(args, port, pids, k))
            result["run_dir"] = str(run_dir)
            print(json.dumps(result), flush=True)
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(json.dumps(result) + "\n")
            time.sleep(1.0)  # the feed ends with its last viewer; the next scenario starts it again


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
