"""C IOCs (pythonSoftIOC: EPICS base records and rsrv) as test subprocesses.

The timing-sensitive system tests run against these rather than the caproto demo IOC: the
benchmarks' IOC (``bench/cioc.py``: ``calc`` counters processed by EPICS' own periodic scan)
posts its updates on the scan's schedule, each one exactly one more than the last, so a test
can tell a lost update from a late one. ``tests/support/typed_ioc.py`` serves one record per
Channel Access type.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from devices.demo.ports import free_ca_port
from devices.demo.procio import read_line

from .ioc import HOST, PROJECT_ROOT, IocProcess

COUNTERS = 40  # CIO:v0 .. v39, 10 Hz
SETPOINTS = 4  # CIO:sp0 .. sp3, plain ao records


class CIocProcess(IocProcess):
    """``bench/cioc.py`` on 127.0.0.1:``port``: ``<prefix>v<i>`` counters at ``rate`` Hz.

    Counter ``v<i>`` starts at ``i/1000`` and adds 1 on every scan, so consecutive updates of
    one PV differ by exactly 1.0.
    """

    def __init__(self, prefix: str, port: int, *, counters: int = COUNTERS, rate: float = 10.0,
                 setpoints: int = SETPOINTS) -> None:
        super().__init__(prefix, port, ["--count", str(counters), "--rate", f"{rate:g}",
                                        "--setpoints", str(setpoints), "--big-size", "16",
                                        "--big-rate", "1"])

    def command(self) -> list[str]:
        return [sys.executable, str(PROJECT_ROOT / "bench" / "cioc.py"), "--prefix", self.prefix,
                "--host", HOST, "--port", str(self.port), *self.extra_args]

    def channel_counts(self, timeout: float = 3.0) -> dict[str, int]:
        """Open CA channels per PV name over all clients (rsrv's report, refreshed by a write
        to ``diag:refresh``), read on caproto circuits of their own as the demo IOC's are."""
        from caproto.sync.client import read, write

        write(self.pvname("diag:refresh"), 1, notify=True, timeout=timeout, repeater=False)
        response = read(self.pvname("diag:channels"), timeout=timeout, repeater=False)
        return {name: count for name, count in json.loads(bytes(response.data).rstrip(b"\0").decode()).items()
                if not name.startswith(self.pvname("diag:"))}


@contextmanager
def typed_ioc_process() -> Iterator[int]:
    """``tests/support/typed_ioc.py`` on a free port of its own; yields the port."""
    port = free_ca_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.typed_ioc", "--port", str(port)],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = read_line(proc, 20)
        assert line == f"READY {port}", line
        yield port
    finally:
        proc.kill()
        proc.wait()
