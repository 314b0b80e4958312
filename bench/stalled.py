"""The stalled-client case: one client subscribes to a big waveform and never reads.

    OAS_CLIENT_STALL_TIMEOUT_S=20 .venv/bin/python bench/stalled.py --seconds 60
    .venv/bin/python bench/stalled.py --seconds 60          # the server's default timeout

Starts the IOC (``BENCH:big``, 200000 floats at 10 Hz, and a few scalars) and the server,
connects a normal reading client (big waveform and scalars) and measures it alone for
``--baseline`` seconds, then connects a client whose socket has a small SO_RCVBUF and a
one-message queue, so the kernel buffers fill at once, and which never reads. Each second
it samples the server's RSS, both kernel ends of the stalled connection (state, bytes
queued), whether the server logged closing a stuck client, and what the reader received.
At the end the stalled client reads what is left, to see how the server closed it. Prints
one JSON line (``--timeline`` adds the per-second samples). ``--ioc c`` (default) serves the
PVs from bench/cioc.py (the waveform written by a Python thread, processed in C), ``--ioc
caproto`` from bench/ioc.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from procs import HOST, RESULTS_DIR, Proc, Stack, leftover_processes, machine_busy
from tcpstate import tcp_end
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from wsclient import Client, Tally, parse_value, prime, small_buffer_socket

SCALARS = 5
STUCK_LOG = "closing stuck client"


def rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def reader_rates(reader: Client, before: dict[str, int], seconds: float) -> dict[str, float]:
    """Messages/s the reader got since ``before`` for the big waveform and per scalar."""
    big = (reader.per_pv.get("BENCH:big", 0) - before.get("BENCH:big", 0)) / seconds
    scalars = [(reader.per_pv.get(f"BENCH:v{i}", 0) - before.get(f"BENCH:v{i}", 0)) / seconds
               for i in range(SCALARS)]
    return {"big_hz": round(big, 2), "scalar_hz_min": round(min(scalars), 2)}


def latency_summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None}
    ordered = sorted(values)
    return {"p50_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)}


async def drain(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    """Read what the stalled client has left; how (and whether) its connection ended."""
    messages = values = 0
    nbytes = 0
    outcome: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                text = await ws.recv()
                messages += 1
                nbytes += len(text)
                if isinstance(text, str) and parse_value(text) is not None:
                    values += 1
    except ConnectionClosed as exc:
        outcome = {"close_code": exc.rcvd.code if exc.rcvd else None,
                   "close_reason": exc.rcvd.reason if exc.rcvd else "",
                   "closed_by": "server" if exc.rcvd else "no close frame (connection lost)"}
    except TimeoutError:
        outcome = {"close_code": None, "closed_by": f"still open after reading {timeout:g} s"}
        await ws.close()
    return {"drained_messages": messages, "drained_values": values,
            "drained_mb": round(nbytes / 2**20, 2), **outcome}


async def measure(args: argparse.Namespace, stack: Stack, server: Proc) -> dict[str, Any]:
    port = stack.server_ports[0]
    url = f"ws://{HOST}:{port}/api/v1/pv-socket"
    names = ["BENCH:big", *(f"BENCH:v{i}" for i in range(SCALARS))]
    await prime(url, names[1])
    compression = None if args.compression == "none" else args.compression
    tally = Tally(measuring=True)
    reader = Client(0, url, names, tally, compression, per_pv_latency={})
    await reader.start()
    for _ in range(300):
        if reader.ready():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)

    # Baseline: the reader alone.
    rss_start = rss_mb(server.pid)
    cpu0 = psutil.Process(server.pid).cpu_times()
    machine0 = machine_busy()
    before = dict(reader.per_pv)
    assert reader.per_pv_latency is not None
    reader.per_pv_latency.clear()
    t0 = time.monotonic()
    await asyncio.sleep(args.baseline)
    baseline_wall = time.monotonic() - t0
    cpu1 = psutil.Process(server.pid).cpu_times()
    baseline = {
        **reader_rates(reader, before, baseline_wall),
        "big_latency": latency_summary(reader.per_pv_latency.get("BENCH:big", [])),
        "server_cpu_pct": round(100 * (cpu1.user + cpu1.system - cpu0.user - cpu0.system)
                                / baseline_wall, 1),
        "server_rss_mb": rss_mb(server.pid),
        "machine_cpu_pct": round(100 * (machine_busy() - machine0) / baseline_wall, 1),
    }

    # The stalled client: small receive buffer, one-message queue, never reads.
    sock = small_buffer_socket(HOST, port, args.rcvbuf)
    client_port = int(sock.getsockname()[1])
    # No keepalive pings from this side: the library would close the connection itself
    # (20 s ping + 20 s timeout + 10 s close timeout) and hide what the server does.
    stalled = await connect(url, sock=sock, max_queue=1, max_size=None, compression=compression,
                            open_timeout=30, ping_interval=None)
    await stalled.send(json.dumps({"action": "subscribe", "pvs": names}))
    t_stall = time.monotonic()
    log_lines_before = server.log_text().count(STUCK_LOG)
    timeline: list[dict[str, Any]] = []
    closed_at: dict[str, float] = {}
    rss_peak = rss_start
    before = dict(reader.per_pv)
    reader.per_pv_latency.clear()
    cpu0 = psutil.Process(server.pid).cpu_times()
    machine0 = machine_busy()
    last = dict(reader.per_pv)
    while (elapsed := time.monotonic() - t_stall) < args.seconds:
        await asyncio.sleep(1.0)
        elapsed = round(time.monotonic() - t_stall, 1)
        rss = rss_mb(server.pid)
        rss_peak = max(rss_peak, rss)
        server_end = tcp_end(port, client_port)
        client_end = tcp_end(client_port, port)
        logged = server.log_text().count(STUCK_LOG) > log_lines_before
        if server_end is not None and server_end.tx_queue > 0 and "send_buffer_filling" not in closed_at:
            closed_at["send_buffer_filling"] = elapsed  # the server's sends start to back up
        if logged and "server_logged_stuck" not in closed_at:
            closed_at["server_logged_stuck"] = elapsed
        gone = server_end is None or server_end.state != "ESTABLISHED"
        if gone and "server_tcp_end_closed" not in closed_at:
            closed_at["server_tcp_end_closed"] = elapsed
        if server_end is None and "server_tcp_end_gone" not in closed_at:
            closed_at["server_tcp_end_gone"] = elapsed
        timeline.append({
            "t": elapsed, "rss_mb": rss,
            "server_end": None if server_end is None else
            f"{server_end.state} txq={server_end.tx_queue}",
            "client_end": None if client_end is None else
            f"{client_end.state} rxq={client_end.rx_queue}",
            "stuck_logged": logged,
            **reader_rates(reader, last, 1.0),
        })
        last = dict(reader.per_pv)
    stall_wall = time.monotonic() - t_stall
    cpu1 = psutil.Process(server.pid).cpu_times()
    during = {
        **reader_rates(reader, before, stall_wall),
        "big_latency": latency_summary(reader.per_pv_latency.get("BENCH:big", [])),
        "scalar_latency": latency_summary(
            [x for i in range(SCALARS) for x in reader.per_pv_latency.get(f"BENCH:v{i}", [])]),
        "server_cpu_pct": round(100 * (cpu1.user + cpu1.system - cpu0.user - cpu0.system)
                                / stall_wall, 1),
        "machine_cpu_pct": round(100 * (machine_busy() - machine0) / stall_wall, 1),
    }
    reader_alive = reader.task is not None and not reader.task.done()
    rss_end = rss_mb(server.pid)
    drained = await drain(stalled, timeout=args.drain_timeout)
    await reader.close()
    stuck_lines = [line for line in server.log_text().splitlines() if STUCK_LOG in line]
    other_problems = [line for line in server.log_text().splitlines()
                      if ("WARNING" in line or "ERROR" in line or "Traceback" in line)
                      and STUCK_LOG not in line]
    result: dict[str, Any] = {
        "stall_timeout_s": os.environ.get("OAS_CLIENT_STALL_TIMEOUT_S", "server default"),
        "seconds": args.seconds,
        "big_size": args.big_size,
        "big_rate_hz": args.big_rate,
        "compression": args.compression,
        "rcvbuf": args.rcvbuf,
        "server_rss_mb": {"start": rss_start, "peak": rss_peak, "end": rss_end},
        "closed_at_s": closed_at or "never (within the window)",
        "stalled_client_after_window": drained,
        "reader_baseline": baseline,
        "reader_while_stalled": during,
        "reader_still_connected": reader_alive,
        "reader_close_code": reader.close_code,
        "server_stuck_log": stuck_lines[:3],
        "server_other_log_problems": other_problems[:8],
        "run_dir": str(stack.run_dir),
    }
    if args.timeline:
        result["timeline"] = timeline
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with Stack(RESULTS_DIR / f"{stamp}-stalled-{os.getpid()}") as stack:
        stack.start_ca(count=SCALARS, rate=10.0, big_size=args.big_size, big_rate=args.big_rate,
                       ioc=args.ioc)
        env = {"OAS_LOG_LEVEL": "WARNING"}
        if "OAS_CLIENT_STALL_TIMEOUT_S" in os.environ:
            env["OAS_CLIENT_STALL_TIMEOUT_S"] = os.environ["OAS_CLIENT_STALL_TIMEOUT_S"]
        server = stack.start_server(env)
        try:
            result = await measure(args, stack, server)
        except Exception as exc:  # noqa: BLE001 - a failed scenario is a result too
            result = {"error": f"{type(exc).__name__}: {exc}", "server_exit": server.popen.poll(),
                      "server_log_tail": server.log_text().splitlines()[-8:]}
        finally:
            stop_problems = stack.stop()
    result["ioc"] = args.ioc
    result["stop_problems"] = stop_problems
    result["leftover_processes"] = leftover_processes()
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the client stays stalled")
    parser.add_argument("--baseline", type=float, default=10.0, help="reader-alone seconds first")
    parser.add_argument("--big-size", type=int, default=200000)
    parser.add_argument("--big-rate", type=float, default=10.0)
    parser.add_argument("--rcvbuf", type=int, default=4096, help="stalled client's SO_RCVBUF")
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    parser.add_argument("--timeline", action="store_true", help="include the per-second samples")
    parser.add_argument("--ioc", choices=["c", "caproto"], default="c",
                        help="c: bench/cioc.py (EPICS base records, default); caproto: bench/ioc.py")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON line to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    line = json.dumps(asyncio.run(run(args)))
    print(line, flush=True)
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(line + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
