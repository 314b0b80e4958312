"""Starting the demo IOC next to the server for `serve --demo`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .ca_repeater import ensure_repeater
from .ports import free_ca_port
from .procio import read_line

PROJECT = Path(__file__).resolve().parents[2]
DEMO_STARTUP = Path(__file__).resolve().parent / "startup"  # devices of the demo IOC


def start_demo_ioc(prefix: str = "DEMO:", timeout: float = 20.0) -> list[subprocess.Popen[bytes]]:
    """Spawn the demo IOC on a free loopback port and point this process's CA client at it.

    Also starts a CA repeater if the machine has none, so restarts are seen through beacons.
    Must run before the first Channel Access call, since libca reads its environment once.
    Returns the processes started, for the caller to stop.
    """
    repeater_port = int(os.environ.get("EPICS_CA_REPEATER_PORT", "5065"))
    started: list[subprocess.Popen[bytes]] = []
    try:
        repeater = ensure_repeater(repeater_port)
    except RuntimeError:
        repeater = None  # the port is taken by something else; reconnects are still bounded
    if repeater is not None:
        started.append(repeater)
    port = free_ca_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices.demo.ioc", "--prefix", prefix, "--host", "127.0.0.1",
         "--port", str(port), "--exit-with-parent"],  # uvicorn re-raises SIGTERM: no finally runs
        cwd=PROJECT, stdout=subprocess.PIPE,
    )
    started.append(proc)
    line = read_line(proc, timeout)
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"the demo IOC did not start (it printed {line!r})")
    assert proc.stdout is not None
    proc.stdout.close()  # nothing more is read; a full pipe must never block the IOC
    existing = os.environ.get("EPICS_CA_ADDR_LIST", "").strip()
    os.environ["EPICS_CA_ADDR_LIST"] = f"{existing} 127.0.0.1:{port}".strip()
    if not existing:
        os.environ.setdefault("EPICS_CA_AUTO_ADDR_LIST", "NO")
    os.environ.setdefault("EPICS_CA_MAX_ARRAY_BYTES", "20000000")
    os.environ["OAS_DEMO_PREFIX"] = prefix
    return started


def start_demo_pva(prefix: str = "DEMO:pva:", timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Spawn the demo PV Access server (devices/demo/pva_ioc.py) and add it to this process's
    PVA name servers (TCP), before the PVA client is created. Returns the process."""
    proc = subprocess.Popen([sys.executable, "-m", "devices.demo.pva_ioc", "--prefix", prefix],
                            cwd=PROJECT, stdout=subprocess.PIPE)
    line = read_line(proc, timeout)
    if not line.startswith(f"READY {prefix} "):
        proc.kill()
        raise RuntimeError(f"the demo PVA server did not start (it printed {line!r})")
    assert proc.stdout is not None
    proc.stdout.close()
    port = int(line.rsplit(" ", 1)[1])
    existing = os.environ.get("EPICS_PVA_NAME_SERVERS", "").strip()
    os.environ["EPICS_PVA_NAME_SERVERS"] = f"{existing} 127.0.0.1:{port}".strip()
    os.environ["OAS_DEMO_PVA_PREFIX"] = prefix
    return proc
