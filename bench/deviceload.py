"""One device-socket scenario: a motor's readback at 10 Hz to K clients.

    .venv/bin/python bench/deviceload.py --clients 100 --seconds 15
    .venv/bin/python bench/deviceload.py --clients 100 --socket pv    # the same, via the pv-socket

Starts a CA repeater, the benchmark IOC with its motor record ``BENCH:mtr`` and the server
with one startup file (``motor1 = EpicsMotor("BENCH:mtr", name="motor1")``). A control client
keeps the motor moving between -``--travel`` and +``--travel`` mm with ``set`` requests on the
device socket (one at a time; the reply comes when the move ends), so the IOC writes its
readback at ~20 Hz all the time and the server's rate cap (OAS_SCALAR_RATE_HZ, 10) is what
clients should get. Then K clients connect one after another and subscribe to ``motor1``
(or, with ``--socket pv``, to the PV ``BENCH:mtr.RBV``); after a warm-up, the readback messages
they get are counted for ``--seconds``. A CA monitor of ``BENCH:mtr.RBV`` in this process
(bench/camonitor.py) keeps the IOC's own timestamps, because the device socket's readback
carries the time ophyd saw the value in the server, not the IOC's. Prints one JSON line.
The IOC is always the caproto one (bench/ioc.py): the motor record is a caproto simulation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from camonitor import PvHistory, ioc_stamp
from loadgen import CpuWindow, log_problems, percentile
from procs import HOST, RESULTS_DIR, Proc, Stack, health, leftover_processes, read_channel_counts
from websockets.asyncio.client import connect
from wsclient import Follower, Tally

DEVICE = "motor1"
MOTOR_PV = "BENCH:mtr"
READBACK = f"{DEVICE}_user_readback"
STARTUP = f'from ophyd import EpicsMotor\n\n{DEVICE} = EpicsMotor("{MOTOR_PV}", name="{DEVICE}")\n'
DEFAULT_CAP_HZ = 10.0  # the server's OAS_SCALAR_RATE_HZ default
# caproto's IOC holds every event that follows another on a circuit within 10 ms for up to
# 10 ms more, to batch them. One motor tick is several events on the server's one circuit
# (ophyd's RBV, the pv-socket's RBV, its DBE_PROPERTY event): whichever comes first goes at
# once and the others wait ~10 ms, an IOC artefact that would skew device against pv-socket.
NO_BATCHING = {"CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC": "0"}


@dataclass
class Driver:
    """The control client: moves the motor back and forth with sets, one at a time.

    A set answered ``unknown_device`` before the first move is counted and sent again every
    0.1 s: servers before 774e451 answered so while still loading their startup files (the
    bridge starts at the first WebSocket connection). Any other failure is kept in ``errors``.
    """

    url: str
    travel: float
    timeout: float = 30.0
    moves: list[dict[str, Any]] = field(default_factory=list)  # one per completed set
    errors: list[str] = field(default_factory=list)
    unknown_replies: int = 0
    first_unknown: str = ""
    known_after_s: float | None = None
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name="driver")

    async def run(self) -> None:
        t0 = time.monotonic()
        target = -self.travel
        async with connect(self.url, open_timeout=30) as ws:
            while True:
                sent = time.monotonic()
                await ws.send(json.dumps({"action": "set", "device": DEVICE, "value": target,
                                          "timeout": self.timeout}))
                reply = await _set_reply(ws)
                if reply.get("status") == "done":
                    if self.known_after_s is None:
                        self.known_after_s = round(sent - t0, 3)
                    self.moves.append({"target": target, "at": time.time(),
                                       "reply_s": round(time.monotonic() - sent, 3),
                                       "duration_s": reply.get("duration")})
                    target = -target
                elif reply.get("code") == "unknown_device" and not self.moves:
                    self.unknown_replies += 1
                    self.first_unknown = self.first_unknown or str(reply.get("error"))
                    if time.monotonic() - t0 > 60:
                        raise RuntimeError(f"the server never knew {DEVICE}: {reply}")
                    await asyncio.sleep(0.1)
                    continue
                else:
                    self.errors.append(json.dumps(reply)[:300])
                    await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


async def _set_reply(ws: Any) -> dict[str, Any]:
    """The next ``set`` reply (the control socket subscribes to nothing, but be sure)."""
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("action") == "set":
            return dict(reply)


async def wait_moving(history: PvHistory, driver: Driver, timeout: float) -> None:
    """Until the IOC's readback changes (the first set was accepted; it replies at the end)."""
    t0 = time.monotonic()
    start = len(history.stamps)
    while len(history.stamps) < start + 2:
        if driver.task is not None and driver.task.done():
            driver.task.result()  # raises what ended it
            raise RuntimeError("the control client ended")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"the motor did not move within {timeout:g} s; set errors {driver.errors[:2]}")
        await asyncio.sleep(0.05)


async def wait_ready(followers: list[Follower], driver: Driver, timeout: float) -> float:
    """Seconds until every follower has its subscribe reply and a readback value."""
    t0 = time.monotonic()
    while not all(f.ready() and f.summary is not None for f in followers):
        late = time.monotonic() - t0 > timeout
        dead = [f for f in followers if f.task is not None and f.task.done()]
        if late or dead or (driver.task is not None and driver.task.done()):
            waiting = [f for f in followers if not f.ready() or f.summary is None]
            raise RuntimeError(
                f"{len(waiting)} of {len(followers)} clients not ready after {time.monotonic() - t0:.1f} s; "
                f"first: summary {json.dumps(waiting[0].summary)[:300] if waiting else ''} "
                f"ended {[(f.index, f.close_code, f.error) for f in dead][:3]}; "
                f"driver {driver.task.exception() if driver.task and driver.task.done() else 'running'}")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


def ms_summary(seconds: list[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)
    return {f"p{q}": None if (v := percentile(ordered, q)) is None else round(1000 * v, 1)
            for q in (50, 90, 99)} | {"max": round(1000 * ordered[-1], 1) if ordered else None}


def latencies(followers: list[Follower], history: PvHistory) -> dict[str, Any]:
    """Receive time minus the message timestamp, and minus the IOC's timestamp of that value."""
    index = history.index()
    by_stamp: list[float] = []
    by_ioc: list[float] = []
    stamp_minus_ioc: list[float] = []
    unmatched = 0
    for f in followers:
        for received, stamp, value in zip(f.received, f.stamps, f.values, strict=True):
            if not math.isnan(stamp):
                by_stamp.append(received - stamp)
            ioc = ioc_stamp(index, value, received)
            if ioc is None:
                unmatched += 1
                continue
            by_ioc.append(received - ioc)
            if not math.isnan(stamp):
                stamp_minus_ioc.append(stamp - ioc)
    return {"vs_message_timestamp_ms": ms_summary(by_stamp), "vs_ioc_timestamp_ms": ms_summary(by_ioc),
            "message_timestamp_minus_ioc_ms": ms_summary(stamp_minus_ioc), "unmatched_values": unmatched}


async def measure(args: argparse.Namespace, stack: Stack, server: Proc,
                  history: PvHistory) -> dict[str, Any]:
    port = stack.server_ports[0]
    driver = Driver(f"ws://{HOST}:{port}/api/v1/device-socket", args.travel)
    driver.start()
    await wait_moving(history, driver, timeout=60.0)
    tally = Tally()
    if args.socket == "device":
        url, request, stream = f"ws://{HOST}:{port}/api/v1/device-socket", {
            "action": "subscribe", "device": DEVICE}, READBACK
    else:
        url, request, stream = f"ws://{HOST}:{port}/api/v1/pv-socket", {
            "action": "subscribe", "pv": f"{MOTOR_PV}.RBV"}, f"{MOTOR_PV}.RBV"
    compression = None if args.compression == "none" else args.compression
    followers = [Follower(i, url, [stream], tally, compression, request=request)
                 for i in range(args.clients)]
    for f in followers:  # one at a time, as loadgen.py does
        await f.start()
    ready_s = await wait_ready(followers, driver, timeout=30.0)
    await asyncio.sleep(args.warmup)

    for f in followers:
        f.clear()
    moves_before = len(driver.moves)
    cpu = CpuWindow.begin({"server": server.pid, "ioc": stack.proc("ioc").pid, "loadgen": os.getpid()})
    rss_peak = 0.0
    tally.measuring = True
    start_wall, t0 = time.time(), time.monotonic()
    while (left := args.seconds - (time.monotonic() - t0)) > 0:
        await asyncio.sleep(min(1.0, left))
        rss_peak = max(rss_peak, psutil.Process(server.pid).memory_info().rss / 2**20)
    tally.measuring = False
    wall, end_wall = time.monotonic() - t0, time.time()
    cpu_pct = cpu.percent()
    rss = round(psutil.Process(server.pid).memory_info().rss / 2**20, 1)
    server_health = health(port)
    counts = await asyncio.to_thread(read_channel_counts, stack.env, ioc=stack.ioc)
    await asyncio.sleep(0.3)  # let the monitor get the window's last updates before matching
    for f in followers:
        await f.close()
    await driver.stop()

    ioc_updates, moving_s = history.window(start_wall, end_wall)
    moving_hz = ioc_updates / moving_s if moving_s else 0.0
    cap = args.scalar_rate_hz or DEFAULT_CAP_HZ
    expected = min(cap, moving_hz) * moving_s / wall
    per_client = sorted(f.window_messages / wall for f in followers)
    others: dict[str, int] = {}
    for f in followers:
        for kind, n in f.other_kinds.items():
            others[kind] = others.get(kind, 0) + n
    moves = driver.moves[moves_before:]
    n_problems, first_problems = log_problems(server)
    motor_counts = {pv: n for pv, n in counts.items() if pv.startswith(MOTOR_PV)}
    return {
        "scenario": "device",
        "socket": args.socket,
        "clients": args.clients,
        "stream": stream,
        "scalar_rate_hz": cap,
        "compression": args.compression,
        "ioc_batching": "caproto default" if args.caproto_batching else "off",
        "seconds": round(wall, 2),
        "ready_s": round(ready_s, 2),
        "ioc_rbv_hz": round(ioc_updates / wall, 2),
        "ioc_rbv_hz_while_moving": round(moving_hz, 2),
        "motor_moving_fraction": round(moving_s / wall, 3),
        "expected_hz_per_client": round(expected, 2),
        "per_client_hz_median": round(statistics.median(per_client), 2),
        "per_client_hz_min": round(per_client[0], 2),
        "per_client_hz_max": round(per_client[-1], 2),
        "delivered_ratio": round(statistics.median(per_client) / expected, 3) if expected else None,
        "msgs_per_s": round(tally.messages / wall, 1),
        "latency": latencies(followers, history),
        "other_msgs": others,
        "disconnected_msgs": tally.disconnected,
        "cpu_pct": cpu_pct,
        "server_rss_mb": rss,
        "server_rss_peak_mb": round(rss_peak, 1),
        "health_pvs": server_health.get("pvs"),
        "ca_channels_rbv": motor_counts.get(f"{MOTOR_PV}.RBV", 0),
        "ca_channels_motor_total": sum(motor_counts.values()),
        "sets_in_window": len(moves),
        "set_reply_s": [m["reply_s"] for m in moves],
        "set_errors": driver.errors,
        "unknown_device_replies": driver.unknown_replies,
        "first_unknown_device_reply": driver.first_unknown,
        "device_known_after_s": driver.known_after_s,
        "clients_closed_by_server": sum(1 for f in followers if f.close_code not in (None, 1000)),
        "client_errors": [f.error for f in followers if f.error][:3],
        "server_log_problems": {"lines": n_problems, "first": first_problems} if n_problems else {},
        "run_dir": str(stack.run_dir),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = RESULTS_DIR / f"{stamp}-device-{args.socket}-k{args.clients}-{os.getpid()}"
    with Stack(run_dir) as stack:
        stack.start_ca(count=0, rate=10.0, big_size=16, big_rate=1.0, motor=True, ioc="caproto",
                       ioc_env={} if args.caproto_batching else NO_BATCHING)
        env = {"OAS_LOG_LEVEL": args.log_level,
               "OAS_STARTUP_DIR": str(stack.write_startup("bench_motor.py", STARTUP))}
        if args.scalar_rate_hz is not None:
            env["OAS_SCALAR_RATE_HZ"] = str(args.scalar_rate_hz)
        server = stack.start_server(env)
        history = PvHistory(f"{MOTOR_PV}.RBV", stack.env)
        try:
            history.start()
            result = await measure(args, stack, server, history)
        except Exception as exc:  # noqa: BLE001 - a failed scenario is a result too
            result = {"scenario": "device", "socket": args.socket, "clients": args.clients,
                      "error": f"{type(exc).__name__}: {exc}", "server_exit": server.popen.poll(),
                      "server_log_tail": server.log_text().splitlines()[-8:], "run_dir": str(run_dir)}
        finally:
            history.stop()
            stopping = time.monotonic()
            stop_problems = stack.stop()
            stop_s = time.monotonic() - stopping
    result["stop_s"] = round(stop_s, 2)
    result["stop_problems"] = stop_problems
    result["leftover_processes"] = leftover_processes()
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", "-k", type=int, default=10, help="WebSocket clients (K)")
    parser.add_argument("--socket", choices=["device", "pv"], default="device",
                        help="follow motor1 on the device socket (default) or BENCH:mtr.RBV on the pv-socket")
    parser.add_argument("--seconds", "-d", type=float, default=15.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after all clients have a value")
    parser.add_argument("--travel", type=float, default=45.0,
                        help="the motor sweeps between -TRAVEL and +TRAVEL mm (limits ±50, 10 mm/s)")
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    parser.add_argument("--scalar-rate-hz", type=float, default=None,
                        help="server OAS_SCALAR_RATE_HZ (default: the server's own, 10)")
    parser.add_argument("--caproto-batching", action="store_true",
                        help="leave the IOC's subscription batching on (caproto's default; see NO_BATCHING)")
    parser.add_argument("--log-level", default="WARNING", help="server OAS_LOG_LEVEL")
    parser.add_argument("--out", default=None, help="also append the JSON line to this file")
    args = parser.parse_args(argv)
    if not 0 < args.travel <= 50:
        parser.error("--travel must be in (0, 50]")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    line = json.dumps(result)
    print(line, flush=True)
    if args.out is not None:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
