"""The audited set path: set throughput and latency, and the idle cost of the access review.

    .venv/bin/python bench/setload.py sets --clients 1,10,50 --seconds 10
    .venv/bin/python bench/setload.py sets --clients 1,10,50 --seconds 10 --postgres
    .venv/bin/python bench/setload.py sets --clients 1 --seconds 10 --same-value
    .venv/bin/python bench/setload.py idle --clients 200 --seconds 20 [--postgres]

``sets``: one stack (repeater, IOC, server with ``OAS_WRITE_RATE_HZ=0``); for each C, C
sockets each set its own PV ``BENCH:sp<i>`` in turn (send, wait for the reply, next), always a
new value so the IOC's monitor ends the bridge's readback wait early (``--same-value``: the
same value every time, which the PV then already holds). ``--ioc c`` (default):
``sp<i>`` are ``ao`` records of bench/cioc.py; ``--ioc caproto``: floats of bench/ioc.py. One JSON line per C:
sets/s, reply latency, server CPU, audit rows written and left ``pending``.

``idle``: K sockets subscribed to one PV each, anonymous, then (new server, same database)
authenticated with an API token made beforehand with ``manage.py shell``; server CPU over the
window for each. The IOC updates at 0.1 Hz, so the window is mostly the access review.

``--postgres`` creates a fresh database on 127.0.0.1:5432 (user postgres, trust auth) and
drops it afterwards; otherwise the server uses the run's private SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from typing import Any

from loadgen import CpuWindow, log_problems, percentile
from procs import HOST, PROJECT_ROOT, RESULTS_DIR, Stack, leftover_processes
from websockets.asyncio.client import ClientConnection, connect

PG = ["psql", "-h", HOST, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt"]


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run([*PG, "-d", db, "-c", sql], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


def database_url(stack: Stack, pg_db: str | None) -> str:
    if pg_db is not None:
        return f"postgres://postgres@{HOST}:5432/{pg_db}"
    return f"sqlite:///{stack.run_dir / 'bench.sqlite3'}"


def audit_counts(stack: Stack, pg_db: str | None) -> dict[str, int]:
    """Audit rows by outcome, read straight from the server's database."""
    sql = "select outcome, count(*) from devices_auditentry group by outcome"
    if pg_db is not None:
        out = psql(sql, pg_db)
        rows = [line.split("|") for line in out.splitlines() if line]
    else:
        with sqlite3.connect(stack.run_dir / "bench.sqlite3", timeout=10) as conn:
            rows = conn.execute(sql).fetchall()
    return {str(k): int(v) for k, v in rows}


def manage(stack: Stack, env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_ROOT,
                          env={**os.environ, **stack.env, **env}, check=True,
                          capture_output=True, text=True, timeout=120).stdout


MAKE_TOKEN = """
from django.contrib.auth.models import User
from devices.access.tokens import api_token_create
user = User.objects.create_user("benchbot", password="pw-bench-123456")
print(api_token_create(user=user, label="bench")[1])
"""


async def setter(index: int, url: str, stop: asyncio.Event, out: dict[str, Any],
                 window: list[float], same_value: bool = False) -> None:
    """Sequential sets of BENCH:sp<index>, each a new value (or always the same); keeps the
    replies in the window."""
    pv = f"BENCH:sp{index}"
    async with connect(url, open_timeout=30, max_size=None) as ws:
        n = 0
        while not stop.is_set():
            n += 1
            sent = time.monotonic()
            await ws.send(json.dumps({"action": "set", "pv": pv, "value": index * 1e6 + (0 if same_value else n) + 0.5,
                                      "id": n}))
            reply = await _reply(ws, n)
            now = time.monotonic()
            if window[0] <= sent and now <= window[1]:
                if reply.get("status") == "done":
                    out["latencies"].append(now - sent)
                else:
                    key = str(reply.get("code") or reply.get("status"))
                    out["errors"][key] = out["errors"].get(key, 0) + 1
            out["sent"] += 1


async def _reply(ws: ClientConnection, ident: int) -> dict[str, Any]:
    while True:
        message = await ws.recv()
        if '"id":' not in str(message):
            continue  # values and metadata of the PV
        reply = json.loads(message)
        if reply.get("id") == ident:
            return dict(reply)


async def run_sets(stack: Stack, server_pid: int, count: int, seconds: float, warmup: float,
                   pg_db: str | None, same_value: bool = False) -> dict[str, Any]:
    url = f"ws://{HOST}:{stack.server_ports[0]}/api/v1/pv-socket"
    before = audit_counts(stack, pg_db)
    stop = asyncio.Event()
    out: dict[str, Any] = {"latencies": [], "errors": {}, "sent": 0}
    start = time.monotonic() + warmup
    window = [start, start + seconds]
    tasks = [asyncio.create_task(setter(i, url, stop, out, window, same_value)) for i in range(count)]
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu = CpuWindow.begin({"server": server_pid, "ioc": stack.proc("ioc").pid, "loadgen": os.getpid()})
    await asyncio.sleep(seconds)
    percent = cpu.percent()
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(1.0)  # let the last rows be closed
    after = audit_counts(stack, pg_db)
    lat = sorted(out["latencies"])
    written = sum(after.values()) - sum(before.values())
    return {
        "clients": count, "seconds": seconds, "db": "postgres" if pg_db else "sqlite", "same_value": same_value,
        "sets_per_s": round(len(lat) / seconds, 1),
        "p50_ms": _ms(percentile(lat, 50)), "p99_ms": _ms(percentile(lat, 99)),
        "max_ms": _ms(lat[-1] if lat else None),
        "errors": out["errors"], "sets_sent_total": out["sent"],
        "audit_rows_written": written, "audit_by_outcome": after,
        "pending_left": after.get("pending", 0),
        "client_exceptions": [repr(r) for r in results if isinstance(r, BaseException)][:3],
        "cpu": percent,
    }


async def run_idle(stack: Stack, server_pid: int, count: int, seconds: float,
                   headers: dict[str, str] | None) -> dict[str, Any]:
    url = f"ws://{HOST}:{stack.server_ports[0]}/api/v1/pv-socket"
    sockets: list[ClientConnection] = []
    for i in range(count):
        ws = await connect(url, open_timeout=30, additional_headers=headers)
        await ws.send(json.dumps({"action": "subscribe", "pvs": [f"BENCH:v{i % 10}"]}))
        sockets.append(ws)
    seen: dict[str, int] = {}
    drains = [asyncio.create_task(_drain(ws, seen)) for ws in sockets]
    await asyncio.sleep(6.0)  # settle: subscribe replies, first values, one review round
    cpu = CpuWindow.begin({"server": server_pid, "loadgen": os.getpid()})
    await asyncio.sleep(seconds)
    percent = cpu.percent()
    closed = sum(1 for d in drains if d.done())
    for ws in sockets:
        await ws.close()
    for d in drains:
        d.cancel()
    return {"clients": count, "auth": "token" if headers else "anonymous", "seconds": seconds,
            "closed_during_window": closed, "messages_by_kind": seen, "cpu": percent}


async def _drain(ws: ClientConnection, seen: dict[str, int]) -> None:
    """Read everything; count value messages and error replies (a refused subscribe)."""
    async for message in ws:
        text = str(message)
        kind = "values" if text.startswith('{"pv":') else "errors" if '"error"' in text else "other"
        seen[kind] = seen.get(kind, 0) + 1


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def server_env(url: str, review_s: float, pythonpath: str) -> dict[str, str]:
    env = {"DATABASE_URL": url, "OAS_WRITE_RATE_HZ": "0", "OAS_ACCESS_REVIEW_S": f"{review_s:g}"}
    if pythonpath:  # e.g. a psycopg installed with pip --target, when the venv has none
        env["PYTHONPATH"] = pythonpath
    return env


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    run_dir = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-set-{args.mode}-{os.getpid()}"
    pg_db = f"bench_set_{os.getpid()}" if args.postgres else None
    counts = [int(c) for c in args.clients.split(",")]
    lines: list[dict[str, Any]] = []
    if pg_db is not None:
        psql(f"create database {pg_db}")
    try:
        with Stack(run_dir) as stack:
            ioc_env = {} if args.caproto_batching else {"CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC": "0"}
            stack.start_ca(count=10, rate=0.1, big_size=1, big_rate=0.1,
                           setpoints=max(counts), ioc=args.ioc, ioc_env=ioc_env)
            url = database_url(stack, pg_db)
            env = server_env(url, args.review_s, args.pythonpath)
            if args.mode == "sets":
                server = stack.start_server(env)
                for count in counts:
                    lines.append(await run_sets(stack, server.pid, count, args.seconds,
                                                args.warmup, pg_db, args.same_value))
                    lines[-1]["ioc"] = args.ioc
                    print(json.dumps(lines[-1]), flush=True)
                problems = log_problems(server)
                lines[-1]["server_log_problems"] = problems
            else:
                manage(stack, env, "migrate", "--noinput")
                key = manage(stack, env, "shell", "-c", MAKE_TOKEN).strip().splitlines()[-1]
                for auth in ("anonymous", "token"):
                    server = stack.start_server(env, name=f"server-{auth}")
                    headers = {"Authorization": f"Bearer {key}"} if auth == "token" else None
                    line = await run_idle(stack, server.pid, counts[0], args.seconds, headers)
                    line["server_log_problems"] = log_problems(server)
                    line["db"] = "postgres" if pg_db else "sqlite"
                    line["ioc"] = args.ioc
                    lines.append(line)
                    print(json.dumps(line), flush=True)
                    server.popen.terminate()
                    server.popen.wait(timeout=15)
                    stack.server_ports.clear()
            stopped = stack.stop()
        if stopped or leftover_processes():
            lines[-1]["stop_problems"] = stopped + leftover_processes()
    finally:
        if pg_db is not None:
            psql(f"drop database if exists {pg_db} with (force)")
    (run_dir / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["sets", "idle"])
    parser.add_argument("--clients", default="1,10,50", help="C list for sets; K for idle")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--review-s", type=float, default=5.0, help="server OAS_ACCESS_REVIEW_S")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--same-value", action="store_true",
                        help="sets: each client writes the same value every time (no monitor from a C IOC)")
    parser.add_argument("--ioc", choices=["c", "caproto"], default="c",
                        help="c: bench/cioc.py (EPICS base records, default); caproto: bench/ioc.py")
    parser.add_argument("--no-caproto-batching", dest="caproto_batching", action="store_false",
                        help="IOC without caproto's 10 ms event hold-back (see README, device socket)")
    parser.add_argument("--pythonpath", default="",
                        help="PYTHONPATH for the server and manage.py (a psycopg outside the venv)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    lines = asyncio.run(main_async(args))
    if args.mode == "sets":
        print(json.dumps({"summary": [
            {k: x[k] for k in ("db", "clients", "sets_per_s", "p50_ms", "p99_ms",
                               "audit_rows_written", "pending_left")}
            | {"server_cpu": x["cpu"]["server"]} for x in lines]}))


if __name__ == "__main__":
    main()
