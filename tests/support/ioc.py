"""Run the demo IOC (devices.demo.ioc) as a subprocess, and point CA clients at it.

Clients find IOCs only through the addresses set by ``configure_ca_client_env``.
Reconnects after an IOC restart or a server-side disconnect take 0-10 s: libca
re-searches a lost channel only on its fixed 10 s "disconnect governor" tick.
Beacons, forwarded by the repeater, matter after long outages: without them a
channel searched for minutes may wait ~2 min for its next search.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import epics

from devices.demo.ca_repeater import start_repeater as _start_repeater
from devices.demo.ports import free_ca_port

from .child import PROJECT_ROOT, START_TIMEOUT, ChildProcess

__all__ = ["HOST", "PROJECT_ROOT", "START_TIMEOUT", "IocProcess", "configure_ca_client_env", "free_port",
           "start_repeater"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (CA uses both on the same number)."""
    return free_ca_port(HOST)


def configure_ca_client_env(ports: list[int], *, repeater_port: int | None = None) -> None:
    """Point CA clients of this process (and its children) at IOCs on local ``ports``.

    Must run before pyepics makes its first CA call: libca reads these once.
    The repeater port is private so tests never meet a repeater or IOC of
    someone else; start the repeater itself with ``start_repeater``.
    """
    os.environ["EPICS_CA_ADDR_LIST"] = " ".join(f"{HOST}:{port}" for port in ports)
    os.environ["EPICS_CA_AUTO_ADDR_LIST"] = "NO"
    os.environ["EPICS_CA_MAX_ARRAY_BYTES"] = "10000000"
    os.environ["EPICS_CA_REPEATER_PORT"] = str(repeater_port or free_port())
    # Read by the demo IOC (caproto server): beacons to the repeater, on loopback only.
    os.environ["EPICS_CAS_BEACON_PORT"] = os.environ["EPICS_CA_REPEATER_PORT"]
    os.environ["EPICS_CAS_BEACON_ADDR_LIST"] = HOST
    os.environ["EPICS_CAS_AUTO_BEACON_ADDR_LIST"] = "NO"


def start_repeater() -> subprocess.Popen[bytes]:
    """caproto's CA repeater on EPICS_CA_REPEATER_PORT (loopback); the caller kills it.

    With it, libca gets the IOC's beacons as in a real installation and does not try to
    spawn the caRepeater that pyepics does not ship for Linux.
    """
    return _start_repeater(int(os.environ["EPICS_CA_REPEATER_PORT"]), HOST, START_TIMEOUT)


class IocProcess(ChildProcess):
    """One demo IOC subprocess on 127.0.0.1:``port``; ``stop`` kills it like a crash would."""

    def __init__(self, prefix: str, port: int, extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.prefix = prefix
        self.port = port
        self.extra_args = list(extra_args or [])
        self.label = f"IOC {prefix} on port {port}"

    def pvname(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "devices.demo.ioc", "--prefix", self.prefix, "--host", HOST,
                "--port", str(self.port), "--exit-with-parent", *self.extra_args]

    def ready(self, line: str) -> bool:
        return line == f"READY {self.prefix} {self.port}"

    def channel_counts(self, timeout: float = 3.0) -> dict[str, int]:
        """``diag:channels``: open CA channels per PV name, over all clients.

        Read with caproto's sync client on its own short-lived circuit, so the
        count includes that one channel to ``diag:channels`` and nothing else
        of this process's pyepics channels.
        """
        from caproto.sync.client import read

        # repeater=False: otherwise caproto spawns a repeater that outlives the tests.
        response = read(self.pvname("diag:channels"), timeout=timeout, repeater=False)
        return json.loads(bytes(response.data).rstrip(b"\0").decode())

    def caget(self, suffix: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 5.0)
        return epics.caget(self.pvname(suffix), **kwargs)

    def caput(self, suffix: str, value: Any, wait: bool = True, **kwargs: Any) -> Any:
        """pyepics caput; with ``wait`` it returns 1 once the IOC completed the put."""
        kwargs.setdefault("timeout", 10.0)
        return epics.caput(self.pvname(suffix), value, wait=wait, **kwargs)

