"""Run the benchmark matrix and the stalled-client case, and print markdown tables.

    .venv/bin/python bench/report.py                 # ~12 minutes on 2 cores
    .venv/bin/python bench/report.py --seconds 5 --stall-seconds 30 --skip-extra   # quicker
    .venv/bin/python bench/report.py --devices-only  # the device-socket section alone, ~2 minutes
    .venv/bin/python bench/report.py --peer          # matrix rows of ophyd-websocket 0.1.1 too

Each scenario is its own ``loadgen.py`` / ``stalled.py`` / ``deviceload.py`` process, so one scenario's
processes, memory and event loop never carry into the next. The PV scenarios run against
``--ioc`` (``c``, bench/cioc.py, by default); the device scenarios always against the caproto
IOC, whose motor record they need. Raw JSON lines go to
``bench/results/report-<time>.jsonl``; the tables go to stdout. At the end ``ps`` is checked
for processes a benchmark started (the OAS_BENCH_RUN marker) that are still running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procs import BENCH_DIR, MARKER, PROJECT_ROOT, RESULTS_DIR, leftover_processes

MATRIX_K = (1, 10, 100)
MATRIX_M = (1, 10, 100)
PEER = "ophyd-websocket 0.1.1"  # the variant name of --peer rows
DEVICE_K = "1,10,100,200"  # device socket: a motor's readback to K clients
DEVICE_PV_K = "1,200"  # the same via the pv-socket, for the device socket's overhead as a ratio


def run_json(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    """Run one scenario script and return the JSON object its last stdout line holds."""
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**_environ(), **env})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    result = dict(json.loads(lines[-1]))
    result["command"] = _shell_line(cmd, env)
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def _environ() -> dict[str, str]:
    return dict(os.environ)


def _shell_line(cmd: list[str], env: dict[str, str] | None) -> str:
    """The command as one would type it in the project folder."""
    words = [f"{k}={v}" for k, v in (env or {}).items()]
    words.append(".venv/bin/python")
    words += [str(Path(c).relative_to(PROJECT_ROOT)) if c.startswith(str(BENCH_DIR)) else c
              for c in cmd[1:]]
    return " ".join(words)


def code_state() -> str:
    """The server code measured: HEAD and the files others have changed in the working tree."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=PROJECT_ROOT, capture_output=True,
                              text=True).stdout.strip()

    changed = git("status", "--short", "--", "devices", "ophydsite").replace("\n", ", ")
    return f"HEAD {git('rev-parse', '--short', 'HEAD')}, changed: {changed or 'nothing'}"


def loadgen(k: int, m: int, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH_DIR / "loadgen.py"), "--clients", str(k), "--pvs", str(m),
           "--rate", str(args.rate), "--seconds", str(args.seconds), "--warmup", str(args.warmup),
           "--ioc", args.ioc, *extra]
    print(f"  running K={k} M={m} {' '.join(extra)}", file=sys.stderr, flush=True)
    return run_json(cmd)


def stalled(args: argparse.Namespace, timeout_s: str | None, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH_DIR / "stalled.py"), "--seconds", str(args.stall_seconds),
           "--timeline", "--ioc", args.ioc, *extra]
    env = {} if timeout_s is None else {"OAS_CLIENT_STALL_TIMEOUT_S": timeout_s}
    print(f"  running stalled client, stall timeout {timeout_s or 'default'} {' '.join(extra)}",
          file=sys.stderr, flush=True)
    return run_json(cmd, env=env)


def deviceload(k: int, socket: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH_DIR / "deviceload.py"), "--clients", str(k), "--socket", socket,
           "--seconds", str(args.device_seconds), "--warmup", str(args.warmup)]
    if args.device_scalar_rate_hz is not None:
        cmd += ["--scalar-rate-hz", str(args.device_scalar_rate_hz)]
    print(f"  running device scenario K={k} via the {socket} socket", file=sys.stderr, flush=True)
    return run_json(cmd)


def _ks(text: str) -> list[int]:
    return [int(k) for k in text.split(",") if k.strip()]


# --- tables -----------------------------------------------------------------------------------

LOAD_HEADER = ("| variant | K | M | asked msg/s | delivered msg/s | ratio | per-PV Hz | p50 ms | p99 ms "
               "| server CPU % | server RSS MB | IOC CPU % | loadgen CPU % | machine CPU % (others) "
               "| CA ch. max/PV | CA ch. total | notes |")


def load_row(variant: str, r: dict[str, Any]) -> str:
    if "error" in r:
        exit_codes = r.get("server_exit", {})
        return (f"| {variant} | {r.get('clients', '')} | {r.get('pvs', '')} | | | | | | | | | | | | | | "
                f"FAILED: {r['error'][:120]}; server exit {exit_codes} |")
    cpu = r["cpu_pct"]
    server_names = [n for n in cpu if n.startswith("server") or n == "peer"]
    server_cpu = " + ".join(f"{cpu[n]:.0f}" for n in server_names)
    if "bridge" in cpu:
        server_cpu += f" (+ bridge {cpu['bridge']:.0f}"
        server_cpu += f", redis {cpu['redis']:.0f})" if "redis" in cpu else ")"
    rss = " + ".join(f"{v:.0f}" for v in r["server_rss_mb"].values())
    notes = []
    if r["server_log_problems"]:
        notes.append("server log: " + "; ".join(
            f"{name}: {p['lines']} lines, e.g. {p['first'][0][:80]!r}"
            for name, p in r["server_log_problems"].items()))
    if r["clients_closed_by_server"]:
        notes.append(f"{r['clients_closed_by_server']} clients closed by server")
    if r["disconnected_msgs"] or r["null_timestamps"]:
        notes.append(f"{r['disconnected_msgs']} disconnected, {r['null_timestamps']} null timestamps")
    if r["per_client_msgs_per_s_max"] > 1.2 * r["per_client_msgs_per_s_min"]:
        notes.append(f"clients {r['per_client_msgs_per_s_min']}..{r['per_client_msgs_per_s_max']} msg/s")
    if r["stop_problems"] or r["leftover_processes"]:
        notes.append(f"stop: {r['stop_problems']} leftovers: {r['leftover_processes']}")
    return (f"| {variant} | {r['clients']} | {r['pvs']} | {r['expected_msgs_per_s']:.0f} "
            f"| {r['msgs_per_s']:.0f} | {r['delivered_ratio']:.2f} | {r['per_pv_hz_median']} "
            f"| {r['latency_ms_p50']} | {r['latency_ms_p99']} | {server_cpu} | {rss} "
            f"| {cpu['ioc']:.0f} | {cpu['loadgen']:.0f} | {cpu['machine']:.0f} ({cpu['others']:.0f}) "
            f"| {r['ca_channels_max_per_pv']} "
            f"| {r['ca_channels_total']} | {'; '.join(notes)} |")


STALL_HEADER = ("| stall timeout | big array | reader alone: big Hz / scalar Hz / server CPU % "
                "/ machine CPU % "
                "| reader while stalled: big Hz / scalar Hz / big p50 ms | server RSS MB start / peak / end "
                "| server logged stuck at | server TCP end closed at | stalled client, read afterwards "
                "| other server log lines |")


def stall_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| | | FAILED: {r['error'][:200]} | | | | | | |"
    base, during = r["reader_baseline"], r["reader_while_stalled"]
    rss = r["server_rss_mb"]
    closed = r["closed_at_s"] if isinstance(r["closed_at_s"], dict) else {}
    after = r["stalled_client_after_window"]
    last = r.get("timeline", [{}])[-1]
    timeout = r["stall_timeout_s"]
    timeout = "default (30 s)" if timeout == "server default" else f"{timeout} s"
    return (f"| {timeout} | {r['big_size']} × {r['big_rate_hz']:g} Hz "
            f"| {base['big_hz']} / {base['scalar_hz_min']} / {base['server_cpu_pct']} "
            f"/ {base.get('machine_cpu_pct')} "
            f"| {during['big_hz']} / {during['scalar_hz_min']} / {during['big_latency']['p50_ms']} "
            f"| {rss['start']} / {rss['peak']} / {rss['end']} "
            f"| {closed.get('server_logged_stuck', 'never')} s (buffers backed up at "
            f"{closed.get('send_buffer_filling', '?')} s) "
            f"| {closed.get('server_tcp_end_closed', 'not within ' + str(r['seconds']) + ' s')} "
            f"(at end: {last.get('server_end')}) "
            f"| {after.get('drained_messages')} msgs ({after.get('drained_mb')} MB), then "
            f"{after.get('close_code') or after.get('closed_by')} "
            f"| {'<br>'.join(line[:140] for line in r['server_other_log_problems'][:2]) or 'none'} |")


DEVICE_HEADER = ("| socket | K | IOC RBV Hz (moving) | expected Hz | delivered Hz per client: median (min–max) "
                 "| ratio | latency vs IOC p50 / p99 / max ms | vs msg timestamp p50 / p99 ms "
                 "| msg timestamp − IOC p50 / p99 ms | server CPU % | server RSS MB (peak) | loadgen CPU % "
                 "| machine CPU % (others) | CA ch. RBV / motor | other msgs per client/s | notes |")


def device_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return (f"| {r.get('socket', '')} | {r.get('clients', '')} | | | | | | | | | | | | | | "
                f"FAILED: {r['error'][:160]}; server exit {r.get('server_exit')} |")
    lat, cpu = r["latency"], r["cpu_pct"]
    ioc, msg, lag = lat["vs_ioc_timestamp_ms"], lat["vs_message_timestamp_ms"], lat["message_timestamp_minus_ioc_ms"]
    others = sum(r["other_msgs"].values()) / r["clients"] / r["seconds"]
    notes = []
    if r["server_log_problems"]:
        p = r["server_log_problems"]
        notes.append(f"server log: {p['lines']} lines, e.g. {p['first'][0][:80]!r}")
    for key, label in (("unknown_device_replies", "unknown_device replies before the first set"),
                       ("clients_closed_by_server", "clients closed by server"),
                       ("disconnected_msgs", "disconnected msgs")):
        if r[key]:
            notes.append(f"{r[key]} {label}")
    if r["set_errors"]:
        notes.append(f"{len(r['set_errors'])} set errors, e.g. {r['set_errors'][0][:80]!r}")
    if lat["unmatched_values"]:
        notes.append(f"{lat['unmatched_values']} values not matched to an IOC update")
    if r["stop_problems"] or r["leftover_processes"]:
        notes.append(f"stop: {r['stop_problems']} leftovers: {r['leftover_processes']}")
    moving = f"{r['ioc_rbv_hz_while_moving']} ({100 * r['motor_moving_fraction']:.0f} %)"
    rss = f"{r['server_rss_mb']:.0f} ({r['server_rss_peak_mb']:.0f})"
    return (f"| {r['socket']} | {r['clients']} | {moving} "
            f"| {r['expected_hz_per_client']} | {r['per_client_hz_median']} ({r['per_client_hz_min']}–"
            f"{r['per_client_hz_max']}) | {r['delivered_ratio']:.2f} "
            f"| {ioc['p50']} / {ioc['p99']} / {ioc['max']} | {msg['p50']} / {msg['p99']} "
            f"| {lag['p50']} / {lag['p99']} | {cpu['server']:.1f} | {rss} "
            f"| {cpu['loadgen']:.0f} | {cpu['machine']:.0f} ({cpu['others']:.0f}) "
            f"| {r['ca_channels_rbv']} / {r['ca_channels_motor_total']} | {others:.2f} | {'; '.join(notes)} |")


RATIO_HEADER = ("| K | server CPU %: device / pv (ratio) | latency vs IOC p50 ms: device / pv "
                "| p99 ms: device / pv | server RSS MB: device / pv |")


def ratio_rows(device: list[dict[str, Any]], pv: list[dict[str, Any]]) -> list[str]:
    """One row per K measured both ways (failed scenarios left out)."""
    by_k = {r["clients"]: r for r in pv if "error" not in r}
    rows = []
    for d in device:
        p = by_k.get(d.get("clients"))
        if p is None or "error" in d:
            continue
        dc, pc = d["cpu_pct"]["server"], p["cpu_pct"]["server"]
        di, pi = d["latency"]["vs_ioc_timestamp_ms"], p["latency"]["vs_ioc_timestamp_ms"]
        rows.append(f"| {d['clients']} | {dc:.1f} / {pc:.1f} ({dc / pc:.2f}) | {di['p50']} / {pi['p50']} "
                    f"| {di['p99']} / {pi['p99']} | {d['server_rss_mb']:.0f} / {p['server_rss_mb']:.0f} |"
                    if pc else f"| {d['clients']} | {dc:.1f} / {pc:.1f} | | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measurement window per scenario")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--stall-seconds", type=float, default=60.0)
    parser.add_argument("--skip-stalled", action="store_true")
    parser.add_argument("--ioc", choices=["c", "caproto"], default="c",
                        help="IOC of the PV scenarios: c (bench/cioc.py, default) or caproto (bench/ioc.py)")
    parser.add_argument("--peer", action="store_true",
                        help=f"after each matrix row, the same scenario against {PEER} (bench/peer.py)")
    parser.add_argument("--skip-matrix", action="store_true", help="leave out the 3×3 matrix")
    parser.add_argument("--skip-extra", action="store_true", help="leave out the variant rows")
    parser.add_argument("--devices", action="store_true",
                        help="add the device-socket section (a motor readback to K clients)")
    parser.add_argument("--devices-only", action="store_true",
                        help="the device-socket section alone (--devices --skip-matrix --skip-extra --skip-stalled)")
    parser.add_argument("--device-seconds", type=float, default=10.0, help="window per device scenario")
    parser.add_argument("--device-k", default=DEVICE_K, help="K values of the device rows (comma-separated)")
    parser.add_argument("--device-pv-k", default=DEVICE_PV_K,
                        help="K values of the pv-socket comparison rows ('' for none)")
    parser.add_argument("--device-scalar-rate-hz", type=float, default=None,
                        help="server OAS_SCALAR_RATE_HZ for the device rows (default: the server's, 10)")
    args = parser.parse_args()
    if args.devices_only:
        args.devices = args.skip_matrix = args.skip_extra = args.skip_stalled = True

    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"report-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    started = time.monotonic()
    state_before = code_state()
    rows: list[str] = []
    results: list[dict[str, Any]] = []

    def keep(kind: str, variant: str, result: dict[str, Any]) -> dict[str, Any]:
        result = {"kind": kind, "variant": variant, **result}
        results.append(result)
        with out.open("a") as f:
            f.write(json.dumps(result) + "\n")
        return result

    plan = "" if args.skip_matrix else f"matrix at R = {args.rate:g} Hz, {args.seconds:g} s windows; "
    print(f"{plan}raw results in {out}", file=sys.stderr)
    for k in () if args.skip_matrix else MATRIX_K:
        for m in MATRIX_M:
            rows.append(load_row("default", keep("load", "default", loadgen(k, m, args))))
            if args.peer:
                rows.append(load_row(PEER, keep("load", PEER, loadgen(k, m, args, "--server", "peer"))))
    extra_rows: list[str] = []
    if not args.skip_extra:
        extras = [
            ("no compression", 100, 100, ("--compression", "none")),
            ("no compression", 10, 100, ("--compression", "none")),
            ("cap 20 Hz", 1, 1, ("--scalar-rate-hz", "20")),
            ("cap 20 Hz", 10, 10, ("--scalar-rate-hz", "20")),
            ("scaled, 2 servers", 10, 10, ("--servers", "2")),
            ("scaled, 2 servers", 100, 100, ("--servers", "2")),
        ]
        for variant, k, m, flags in extras:
            extra_rows.append(load_row(variant, keep("load", variant, loadgen(k, m, args, *flags))))
    stall_rows: list[str] = []
    if not args.skip_stalled:
        stall_rows.append(stall_row(keep("stalled", "20 s", stalled(args, "20"))))
        stall_rows.append(stall_row(keep("stalled", "default", stalled(args, None))))
        stall_rows.append(stall_row(keep("stalled", "20 s, small array",
                                         stalled(args, "20", "--big-size", "20000"))))

    device_rows: list[str] = []
    compare_rows: list[str] = []
    if args.devices:
        device = [keep("device", "device", deviceload(k, "device", args)) for k in _ks(args.device_k)]
        pv = [keep("device", "pv", deviceload(k, "pv", args)) for k in _ks(args.device_pv_k)]
        device_rows = [device_row(r) for r in device + pv]
        compare_rows = ratio_rows(device, pv)

    text: list[str] = []
    if rows:
        text += [f"### Matrix: K clients × M PVs at R = {args.rate:g} Hz (embedded mode, "
                 f"{args.seconds:g} s windows, IOC: {args.ioc})", "",
                 LOAD_HEADER, "|" + "---|" * (LOAD_HEADER.count("|") - 1), *rows]
    if extra_rows:
        text += ["", "### Variants", "", LOAD_HEADER, "|" + "---|" * (LOAD_HEADER.count("|") - 1),
                 *extra_rows]
    if stall_rows:
        text += ["", f"### Stalled client ({args.stall_seconds:g} s, reader alongside)", "",
                 STALL_HEADER, "|" + "---|" * (STALL_HEADER.count("|") - 1), *stall_rows]
    if device_rows:
        cap = args.device_scalar_rate_hz or 10.0
        text += ["", f"### Device socket: motor1's readback to K clients ({args.device_seconds:g} s windows, "
                 f"cap {cap:g} Hz)", "", DEVICE_HEADER, "|" + "---|" * (DEVICE_HEADER.count("|") - 1), *device_rows]
    if compare_rows:
        text += ["", "Device socket against the pv-socket (BENCH:mtr.RBV), same K:", "", RATIO_HEADER,
                 "|" + "---|" * (RATIO_HEADER.count("|") - 1), *compare_rows]
    text += ["", "### Commands", "", *(f"- `{r.get('command', '?')}`" for r in results)]
    text += ["", f"Server code at start: {state_before}", f"Server code at end: {code_state()}"]
    leftovers = leftover_processes()
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    ioc_lines = [line for line in ps.splitlines()
                 if any(word in line for word in ("bench/ioc.py", "bench/cioc.py", "peer-venv"))]
    text += ["", f"Total {time.monotonic() - started:.0f} s. Processes with {MARKER} still running: "
             f"{leftovers or 'none'}; `ps` lines with bench IOCs or the peer: {ioc_lines or 'none'}"]
    print("\n".join(text))
    out.with_suffix(".md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
