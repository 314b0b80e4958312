"""Starting the demo IOC next to the server for `serve --demo`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return int(udp.getsockname()[1])


def start_demo_ioc(prefix: str = "DEMO:", timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """Spawn the demo IOC on a free loopback port and point this process's CA client at it.

    Must run before the first Channel Access call, since libca reads its environment once.
    """
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices.demo_ioc", "--prefix", prefix, "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=PROJECT, stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode(errors="replace")
        if line.startswith("READY"):
            break
        if not line and proc.poll() is not None:
            raise RuntimeError("the demo IOC exited before it was ready")
    else:
        proc.kill()
        raise RuntimeError("the demo IOC did not start in time")
    existing = os.environ.get("EPICS_CA_ADDR_LIST", "").strip()
    os.environ["EPICS_CA_ADDR_LIST"] = f"{existing} 127.0.0.1:{port}".strip()
    if not existing:
        os.environ.setdefault("EPICS_CA_AUTO_ADDR_LIST", "NO")
    os.environ.setdefault("EPICS_CA_MAX_ARRAY_BYTES", "20000000")
    os.environ["OAS_DEMO_PREFIX"] = prefix
    return proc
