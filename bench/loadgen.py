"""One load scenario: K WebSocket clients each subscribed to the same M PVs updating at R Hz.

    .venv/bin/python bench/loadgen.py --clients 10 --pvs 100 --rate 10 --seconds 15

Starts a CA repeater, the benchmark IOC and the server (``manage.py serve``, embedded bridge)
on free ports, connects the clients from this process, waits until every client has a value
of every PV, warms up, then measures for ``--seconds`` and prints one JSON line: delivered
value messages/s, latency percentiles (receive time minus the IOC's timestamp), CPU of the
server, IOC and this load generator (100 = one core), server RSS, the CA channels the IOC
sees and any warnings or errors the server logged. With ``--servers 2`` it runs the scaled
mode instead (Redis, ``manage.py runbridge`` and two ``serve`` processes, clients split
between them). ``--ioc`` picks the IOC (``c``: bench/cioc.py, EPICS base's records and CA
server, the default; ``caproto``: bench/ioc.py); ``--server peer`` measures ophyd-websocket
0.1.1 (bench/peer.py) instead of this project's server, against the same IOC. ``--protocol pva``
subscribes the clients to ``pva://<prefix>v<i>`` instead of ``<prefix>v<i>``: the C IOC then
serves PV Access too (QSRV2, on free ports of its own, loopback only) and the server's PVA
client is pointed at it alone; the CA channel counts do not apply then and are reported as
"n/a" (the CA channels the IOC counts for the ``v`` records are still read, as
``ca_channels_seen``: 0 shows that the server did not fall back to CA).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from peer import start_peer
from procs import (
    HOST,
    RESULTS_DIR,
    Proc,
    Stack,
    health,
    leftover_processes,
    machine_busy,
    read_channel_counts,
)
from wsclient import Client, Tally, prime

SERVER_NAMES = {"ours": "ophydsite", "peer": "ophyd-websocket 0.1.1"}
LOG_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


@dataclass
class CpuWindow:
    """CPU seconds (user+system) of some processes over a window; servers' children included."""

    procs: dict[str, psutil.Process]
    start: dict[str, float]
    machine_start: float
    t0: float

    @classmethod
    def begin(cls, pids: dict[str, int]) -> CpuWindow:
        procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        return cls(procs, {name: _cpu_seconds(p) for name, p in procs.items()}, machine_busy(),
                   time.monotonic())

    def percent(self) -> dict[str, float]:
        """Per process: CPU seconds used per wall second since ``begin``, in % of one core.

        ``machine`` is every core's busy time (200 = both cores of this machine busy) and
        ``others`` what processes outside this benchmark used meanwhile (other people's tests).
        """
        wall = time.monotonic() - self.t0
        result = {name: round(100.0 * (_cpu_seconds(p) - self.start[name]) / wall, 1)
                  for name, p in self.procs.items()}
        machine = round(100.0 * (machine_busy() - self.machine_start) / wall, 1)
        result["machine"] = machine
        result["others"] = round(machine - sum(v for k, v in result.items() if k != "machine"), 1)
        return result


def redis_pid() -> int | None:
    """The local redis-server, whose CPU counts in scaled mode (it may serve others too)."""
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.info["name"] == "redis-server":
            return int(proc.info["pid"])
    return None


def _cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    # The load generator's children are the servers and the IOC, counted on their own.
    children = [] if proc.pid == os.getpid() else proc.children(recursive=True)
    for p in [proc, *children]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[index]


def log_problems(proc: Proc, limit: int = 8) -> tuple[int, list[str]]:
    """How many warning/error lines ``proc`` logged, and the first few of them."""
    lines = [line for line in proc.log_text().splitlines() if LOG_PROBLEM.search(line)]
    return len(lines), lines[:limit]


async def connect_clients(urls: list[str], names: list[str], tally: Tally, count: int,
                          compression: str | None) -> list[Client]:
    clients = [Client(i, urls[i % len(urls)], names, tally, compression) for i in range(count)]
    for client in clients:  # one at a time: a burst of 100 handshakes measures nothing useful
        await client.start()
    return clients


async def wait_ready(clients: list[Client], timeout: float) -> float:
    """Seconds until every client had a value of every PV (raises after ``timeout``)."""
    t0 = time.monotonic()
    while not all(c.ready() for c in clients):
        if time.monotonic() - t0 > timeout:
            missing = sum(len(c.names) - len(c.seen) for c in clients)
            raise RuntimeError(f"after {timeout:g} s, {missing} (client, PV) pairs had no value yet")
        if any(c.task is not None and c.task.done() for c in clients):
            dead = [c for c in clients if c.task is not None and c.task.done()]
            raise RuntimeError(f"client {dead[0].index} ended early: code {dead[0].close_code} "
                               f"{dead[0].close_reason!r} {dead[0].error}")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def measure(args: argparse.Namespace, stack: Stack, servers: list[Proc]) -> dict[str, Any]:
    """Connect, warm up, measure; the stack is started and is stopped by the caller."""
    scheme = "pva://" if args.protocol == "pva" else ""
    names = [f"{scheme}BENCH:v{i}" for i in range(args.pvs)]
    urls = [f"ws://{HOST}:{port}/api/v1/pv-socket" for port in stack.server_ports]
    tally = Tally()
    compression = None if args.compression == "none" else args.compression
    if args.prime:
        for url in urls:
            await prime(url, names[0])
    clients = await connect_clients(urls, names, tally, args.clients, compression)
    ready_s = await wait_ready(clients, timeout=30.0)
    await asyncio.sleep(args.warmup)

    pids = {s.name: s.pid for s in servers}
    pids["ioc"] = stack.proc("ioc").pid
    for proc in stack.procs:
        if proc.name.startswith("bridge"):  # every shard
            pids[proc.name] = proc.pid
    pids["loadgen"] = os.getpid()
    if args.servers > 1 and (pid := redis_pid()) is not None:
        pids["redis"] = pid
    rss_peak = {s.name: 0.0 for s in servers}
    for client in clients:
        client.window_messages = 0
        client.per_pv.clear()
    cpu = CpuWindow.begin(pids)
    tally.measuring = True
    t0 = time.monotonic()
    while (left := args.seconds - (time.monotonic() - t0)) > 0:
        await asyncio.sleep(min(1.0, left))
        for s in servers:
            rss_peak[s.name] = max(rss_peak[s.name], psutil.Process(s.pid).memory_info().rss / 2**20)
    tally.measuring = False
    wall = time.monotonic() - t0
    cpu_pct = cpu.percent()

    rss = {s.name: round(psutil.Process(s.pid).memory_info().rss / 2**20, 1) for s in servers}
    server_health = [health(port) for port in stack.server_ports] if args.server == "ours" else []
    counts = await asyncio.to_thread(read_channel_counts, stack.env, ioc=stack.ioc)
    extensions = clients[0].ws.response.headers.get("Sec-WebSocket-Extensions") if (
        clients[0].ws is not None and clients[0].ws.response is not None) else None
    bench_counts = {pv: n for pv, n in counts.items() if pv.startswith("BENCH:v") or pv == "BENCH:big"}
    ca_applies = args.protocol == "ca"
    for client in clients:
        await client.close()

    lat = sorted(tally.latencies)
    expected = args.clients * args.pvs * args.rate
    per_client = [c.window_messages / wall for c in clients]
    per_pv_rates = [n / wall for c in clients for n in c.per_pv.values()]
    ended_early = [c for c in clients if c.close_code is not None and c.close_code != 1000]
    problems: dict[str, Any] = {}
    for proc in [*servers, *(p for p in stack.procs if p.name.startswith("bridge"))]:
        n, first = log_problems(proc)
        if n:
            problems[proc.name] = {"lines": n, "first": first}
    return {
        "mode": "scaled" if len(servers) > 1 or args.servers > 1 else "embedded",
        "server": SERVER_NAMES[args.server],
        "ioc": args.ioc,
        "protocol": args.protocol,
        "servers": len(servers),
        "shards": args.shards,
        "clients": args.clients,
        "pvs": args.pvs,
        "rate_hz": args.rate,
        "compression": args.compression,
        "compression_negotiated": extensions,
        "seconds": round(wall, 2),
        "ready_s": round(ready_s, 2),
        "expected_msgs_per_s": expected,
        "msgs_per_s": round(tally.messages / wall, 1),
        "delivered_ratio": round(tally.messages / wall / expected, 3) if expected else None,
        "per_client_msgs_per_s_min": round(min(per_client), 1),
        "per_client_msgs_per_s_max": round(max(per_client), 1),
        "per_pv_hz_median": round(statistics.median(per_pv_rates), 2) if per_pv_rates else None,
        "latency_ms_p50": _ms(percentile(lat, 50)),
        "latency_ms_p90": _ms(percentile(lat, 90)),
        "latency_ms_p99": _ms(percentile(lat, 99)),
        "latency_ms_max": _ms(lat[-1] if lat else None),
        "cpu_pct": cpu_pct,
        "server_rss_mb": rss,
        "server_rss_peak_mb": {k: round(v, 1) for k, v in rss_peak.items()},
        "health_pvs": [h.get("pvs") for h in server_health] or None,
        "ca_channels_max_per_pv": max(bench_counts.values(), default=0) if ca_applies else "n/a",
        "ca_channels_total": sum(bench_counts.values()) if ca_applies else "n/a",
        "ca_channels_pvs": len(bench_counts) if ca_applies else "n/a",
        "ca_channels_seen": sum(bench_counts.values()),
        "null_timestamps": tally.null_timestamps,
        "disconnected_msgs": tally.disconnected,
        "other_msgs": tally.other,
        "clients_closed_by_server": len(ended_early),
        "server_log_problems": problems,
        "run_dir": str(stack.run_dir),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def failure(args: argparse.Namespace, stack: Stack, servers: list[Proc],
            exc: Exception) -> dict[str, Any]:
    """What to report when a scenario could not be measured: the error and how servers ended."""
    return {
        "mode": "scaled" if args.servers > 1 else "embedded",
        "server": SERVER_NAMES[args.server],
        "ioc": args.ioc,
        "protocol": args.protocol,
        "clients": args.clients,
        "pvs": args.pvs,
        "rate_hz": args.rate,
        "error": f"{type(exc).__name__}: {exc}",
        "server_exit": {s.name: s.popen.poll() for s in servers},
        "server_log_tail": {s.name: s.log_text().splitlines()[-5:] for s in servers},
        "run_dir": str(stack.run_dir),
    }


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {"OAS_LOG_LEVEL": args.log_level}
    if args.scalar_rate_hz is not None:
        env["OAS_SCALAR_RATE_HZ"] = str(args.scalar_rate_hz)
    return env


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = RESULTS_DIR / (f"{stamp}-k{args.clients}-m{args.pvs}-s{args.servers}b{args.shards}-{args.server}"
                             f"-{args.ioc}-{args.protocol}-{os.getpid()}")
    with Stack(run_dir) as stack:
        stack.start_ca(count=args.pvs, rate=args.rate, big_rate=1.0, big_size=1000, ioc=args.ioc,
                       pva=args.protocol == "pva")
        env = server_env(args)
        servers: list[Proc] = []
        if args.server == "peer":
            servers.append(start_peer(stack, log_level=args.log_level))
        elif args.servers > 1:
            # Scaled mode: a separate Redis database keeps the bench's command queues apart
            # from anything else using this Redis.
            env = {**env, "REDIS_URL": args.redis_url, "OAS_BRIDGE": "external",
                   "OAS_BRIDGE_SHARDS": str(args.shards)}
            for shard in range(args.shards):  # shard 0 first: it migrates
                stack.start_bridge(env, (shard, args.shards))
            for i in range(args.servers):
                servers.append(stack.start_server(env, name=f"server{i}"))
        else:
            servers.append(stack.start_server(env))
        try:
            result = await measure(args, stack, servers)
        except Exception as exc:  # noqa: BLE001 - a failed scenario is a result too
            result = failure(args, stack, servers, exc)
        finally:
            stop_problems = stack.stop()
    result["stop_problems"] = stop_problems
    result["leftover_processes"] = leftover_processes()
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", "-k", type=int, default=10, help="WebSocket clients (K)")
    parser.add_argument("--pvs", "-m", type=int, default=10, help="PVs each client subscribes to (M)")
    parser.add_argument("--rate", "-r", type=float, default=10.0, help="IOC updates/s per PV (R)")
    parser.add_argument("--seconds", "-d", type=float, default=15.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after all clients have values")
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate",
                        help="permessage-deflate as browsers offer it (default), or none")
    parser.add_argument("--scalar-rate-hz", type=float, default=None,
                        help="server OAS_SCALAR_RATE_HZ (default: the server's own, 10)")
    parser.add_argument("--prime", action="store_true",
                        help="subscribe one PV before the clients connect (was a workaround for a fixed crash)")
    parser.add_argument("--log-level", default="WARNING", help="server OAS_LOG_LEVEL")
    parser.add_argument("--servers", type=int, default=1,
                        help="1: embedded mode; >1: scaled mode with that many serve processes")
    parser.add_argument("--shards", type=int, default=1,
                        help="scaled mode: bridges splitting the PVs (runbridge --shard I/N)")
    # socket_timeout: redis-py 8 reads with a 5 s timeout by default, the same as channels_redis'
    # blocking BZPOPMIN, and bridges before ophydsite/settings/infra.py set their own died of
    # the TimeoutError (README.md). Harmless where the server sets it.
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9?socket_timeout=30")
    parser.add_argument("--ioc", choices=["c", "caproto"], default="c",
                        help="c: bench/cioc.py (EPICS base records, default); caproto: bench/ioc.py")
    parser.add_argument("--server", choices=sorted(SERVER_NAMES), default="ours",
                        help="ours: manage.py serve; peer: ophyd-websocket 0.1.1 (bench/peer.py)")
    parser.add_argument("--protocol", choices=["ca", "pva"], default="ca",
                        help="ca: subscribe <prefix>v<i> (default); pva: pva://<prefix>v<i>, the C IOC "
                             "serving PV Access too")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON line to this file")
    args = parser.parse_args(argv)
    if args.shards < 1 or (args.shards > 1 and args.servers < 2):
        parser.error("--shards N (N >= 1) is for the scaled mode: give --servers 2 or more")
    if args.server == "peer" and (args.servers > 1 or args.scalar_rate_hz is not None or args.prime):
        parser.error("--server peer is one process without a rate cap: no --servers, "
                     "--scalar-rate-hz or --prime")
    if args.protocol == "pva" and (args.ioc != "c" or args.server != "ours"):
        parser.error("--protocol pva needs --ioc c (QSRV2) and --server ours")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    line = json.dumps(result)
    print(line, flush=True)
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(line + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
