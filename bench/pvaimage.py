"""An NTNDArray camera over PV Access for bench/cameraload.py (a p4p server subprocess).

    .venv/bin/python bench/pvaimage.py --name BENCH:image --size 1024x1024 --rate 30

Serves one PV, ``--name``: an NTNDArray of UInt16 Mono frames (the ``ColorMode`` attribute 0,
``dimension`` [W, H], fastest first, as NDPluginPva sends them), a new frame ``--rate`` times a
second on an absolute schedule, ``uniqueId`` + 1 each time and ``timeStamp`` the time it was
posted. Frames come from a ring of 8 made at start (a ramp shifted per frame, the pattern of
bench/cioc.py's ``--image``), so the process's work is posting, not drawing.

The server is isolated (p4p's ``isolate=True``: 127.0.0.1 only, ports of its own). Once serving
it prints ``READY <client conf as JSON>`` on stdout: the EPICS_PVA_* variables a client needs
to find this server and no other. Exits on SIGTERM/SIGINT and when its parent dies.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

CLIENT_KEYS = ("EPICS_PVA_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST", "EPICS_PVA_SERVER_PORT",
               "EPICS_PVA_BROADCAST_PORT")
RING = 8


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--name", default="BENCH:image", help="the NTNDArray PV's name")
    parser.add_argument("--size", default="1024x1024", metavar="WxH")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second")
    args = parser.parse_args(argv)
    try:
        args.width, args.height = (int(n) for n in args.size.lower().split("x"))
    except ValueError:
        parser.error("--size must be WxH, such as 1024x1024")
    if args.width < 1 or args.height < 1 or not 0 < args.rate <= 200:
        parser.error("--size needs W, H >= 1 and --rate in (0, 200]")
    return args


def frame_ring(width: int, height: int) -> list[Any]:
    import numpy as np

    base = np.arange(width * height, dtype=np.uint32)
    return [((base + 997 * i) % 4096).astype(np.uint16) for i in range(RING)]


class Frames:
    """NTNDArray values of the ring's frames; only the counter and the time change per post."""

    def __init__(self, width: int, height: int) -> None:
        from p4p.nt import NTNDArray

        self.nt = NTNDArray()
        self.width, self.height = width, height
        self.ring = frame_ring(width, height)

    def value(self, counter: int) -> Any:
        data = self.ring[counter % len(self.ring)]
        value = self.nt.wrap(data.reshape(self.height, self.width), attrib={"ColorMode": 0})
        value["uniqueId"] = counter
        now = time.time()
        seconds = int(now)
        value["timeStamp.secondsPastEpoch"] = seconds
        value["timeStamp.nanoseconds"] = int((now - seconds) * 1e9)
        value["dataTimeStamp.secondsPastEpoch"] = seconds
        value["dataTimeStamp.nanoseconds"] = int((now - seconds) * 1e9)
        return value


def publish(pv: Any, frames: Frames, rate: float, posted: list[int]) -> None:
    """Post frame after frame at ``rate`` on an absolute schedule (a daemon thread)."""
    start = time.monotonic()
    counter = 0
    while True:
        counter += 1
        pv.post(frames.value(counter))
        posted[0] = counter
        time.sleep(max(0.0, start + counter / rate - time.monotonic()))


def exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from p4p.server import Server
    from p4p.server.thread import SharedPV

    frames = Frames(args.width, args.height)
    pv = SharedPV(initial=frames.value(0))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()
    posted = [0]
    with Server(providers=[{args.name: pv}], isolate=True) as server:
        conf = server.conf()
        client = {key: conf[key] for key in CLIENT_KEYS if key in conf}
        threading.Thread(target=publish, args=(pv, frames, args.rate, posted), name="frames",
                         daemon=True).start()
        print("READY " + json.dumps(client), flush=True)
        done.wait()
    print(f"posted {posted[0]} frames", flush=True)


if __name__ == "__main__":
    main()
