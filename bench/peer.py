"""ophyd-websocket 0.1.1 (PyPI), the server this project replaces, in the same benchmark run.

    .venv/bin/python bench/peer.py                  # install if needed, start it, subscribe one PV
    .venv/bin/python bench/loadgen.py --server peer --clients 1 --pvs 500   # a scenario against it

It needs Python 3.12, so it gets a venv of its own, ``bench/results/peer-venv`` (git-ignored),
made once with ``python3.12 -m venv`` and ``pip install ophyd-websocket==0.1.1``.
``start_peer`` runs its ``ophyd-websocket`` command (uvicorn; OAS_HOST/OAS_PORT from the
environment) on a free port against the stack's IOC, with the stack's CA variables, and waits
until ``GET /`` answers; its pv-socket is ``/api/v1/pv-socket`` as ours.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from procs import HOST, RESULTS_DIR, START_TIMEOUT, Proc, Stack, free_port, leftover_processes
from websockets.asyncio.client import connect
from wsclient import parse_value

PACKAGE = "ophyd-websocket"
VERSION = "0.1.1"
VENV = RESULTS_DIR / "peer-venv"
EXECUTABLE = VENV / "bin" / "ophyd-websocket"


def find_python(explicit: str | None = None) -> str:
    """A Python 3.12: ``explicit``, OAS_PEER_PYTHON, ``python3.12`` on PATH, or pyenv's."""
    candidates = [explicit, os.environ.get("OAS_PEER_PYTHON"), shutil.which("python3.12"),
                  *sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in candidates:
        if candidate and _version(candidate) == "3.12":
            return candidate
    raise RuntimeError("no Python 3.12 found (ophyd-websocket needs it); pass --python or set "
                       "OAS_PEER_PYTHON")


def _version(python: str) -> str:
    """``major.minor`` of ``python``, or "" if it does not run (a pyenv shim without a version)."""
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def installed_version() -> str | None:
    """The ophyd-websocket version in the peer venv, or None if there is none."""
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run([str(python), "-c", "from importlib.metadata import version; "
                          f"print(version({PACKAGE!r}))"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_venv(python: str | None = None) -> Path:
    """The peer's venv with ophyd-websocket 0.1.1, made (or remade) if needed; its command."""
    if installed_version() == VERSION and EXECUTABLE.exists():
        return EXECUTABLE
    interpreter = find_python(python)
    print(f"peer: installing {PACKAGE}=={VERSION} into {VENV} with {interpreter}",
          file=sys.stderr, flush=True)
    if VENV.exists():
        shutil.rmtree(VENV)
    RESULTS_DIR.mkdir(exist_ok=True)
    subprocess.run([interpreter, "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"{PACKAGE}=={VERSION}"],
                   check=True, timeout=900)
    if installed_version() != VERSION:
        raise RuntimeError(f"{PACKAGE} {VERSION} did not install into {VENV}")
    return EXECUTABLE


def start_peer(stack: Stack, *, log_level: str = "WARNING", name: str = "peer",
               python: str | None = None) -> Proc:
    """ophyd-websocket on a free port against the stack's IOC; waits until ``GET /`` answers."""
    executable = ensure_venv(python)
    port = free_port()
    env = {**stack.env, "OAS_HOST": HOST, "OAS_PORT": str(port), "OAS_LOG_LEVEL": log_level,
           "PYTHONUNBUFFERED": "1"}
    proc = stack.spawn(name, [str(executable)], env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{proc.log_text()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2.0):
                pass
        except OSError:
            time.sleep(0.2)
            continue
        stack.server_ports.append(port)
        return proc
    raise RuntimeError(f"{name} did not answer on port {port}:\n{proc.log_text()}")


async def check(args: argparse.Namespace) -> dict[str, Any]:
    """Start the IOC and the peer, subscribe one PV, and report the first values."""
    run_dir = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-peer-check-{os.getpid()}"
    with Stack(run_dir) as stack:
        stack.start_ca(count=10, rate=10.0, big_size=16, big_rate=1.0, ioc=args.ioc)
        proc = start_peer(stack, python=args.python)
        url = f"ws://{HOST}:{stack.server_ports[0]}/api/v1/pv-socket"
        lags: list[float] = []
        async with connect(url, open_timeout=30) as ws:
            await ws.send(json.dumps({"action": "subscribe", "pv": "BENCH:v0"}))
            reply = json.loads(await ws.recv())
            async with asyncio.timeout(10):
                while len(lags) < 10:
                    parsed = parse_value(str(await ws.recv()))
                    if parsed is not None and parsed[1] is not None:
                        lags.append(time.time() - parsed[1])
        result = {"peer": f"{PACKAGE} {installed_version()}", "ioc": args.ioc,
                  "subscribe_reply": reply, "values": len(lags),
                  "latency_ms_median": round(1000 * sorted(lags)[len(lags) // 2], 1),
                  "peer_pid": proc.pid, "run_dir": str(run_dir)}
    result["leftover_processes"] = leftover_processes()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ioc", choices=["c", "caproto"], default="c")
    parser.add_argument("--python", default=None, help="the Python 3.12 for the peer's venv")
    parser.add_argument("--install-only", action="store_true", help="make the venv and stop")
    args = parser.parse_args(argv)
    if args.install_only:
        print(json.dumps({"executable": str(ensure_venv(args.python)), "version": installed_version()}))
        return
    print(json.dumps(asyncio.run(check(args))), flush=True)


if __name__ == "__main__":
    main()
