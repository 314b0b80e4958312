"""The lean CA monitor decodes every DBR_TIME type as pyepics does, against a C IOC.

The client runs in a process of its own: libca reads EPICS_CA_ADDR_LIST once, and this IOC's
port is not among the test process's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.ioc import PROJECT_ROOT
from tests.support.typed_ioc import EXPECTED, PREFIX

pytestmark = pytest.mark.system

CLIENT = r"""
import asyncio, json, sys, time
import epics
from devices.sources.ca_context import ca_executor
from devices.sources.ca_source import CaSource

names = sys.argv[1:]

class Sink:
    def __init__(self): self.values = []
    def source_connection(self, connected): pass
    def source_access(self, access): pass
    def source_property(self, event): pass
    def source_value(self, event): self.values.append(event)

async def main():
    loop = asyncio.get_running_loop()
    executor = ca_executor()  # the threads the bridge uses, attached to the one CA context
    out = {}
    for name in names:
        sink = Sink()
        source = CaSource(name, loop, sink)
        await loop.run_in_executor(executor, source.open)
        info = await loop.run_in_executor(executor, source.info, 5.0)
        for _ in range(100):
            if sink.values: break
            await asyncio.sleep(0.05)
        event = sink.values[0]
        value = event.value.tolist() if hasattr(event.value, "tolist") else event.value
        reference = epics.PV(name, form="time")
        expected = reference.get(timeout=5)
        expected = expected.tolist() if hasattr(expected, "tolist") else expected
        out[name] = {"value": value, "type": type(event.value).__name__, "pyepics": expected,
                     "pyepics_type": type(reference.get()).__name__, "age_s": time.time() - event.timestamp,
                     "timestamp_delta": abs(event.timestamp - reference.timestamp),
                     "severity": event.severity, "status": event.status, "kind": info.kind}
        await loop.run_in_executor(executor, source.close)
    print(json.dumps(out))

asyncio.run(main())
"""


def test_every_type_arrives_as_pyepics_reads_it(typed_ioc):
    env = {**os.environ, "EPICS_CA_ADDR_LIST": f"127.0.0.1:{typed_ioc}", "EPICS_CA_AUTO_ADDR_LIST": "NO"}
    names = [PREFIX + n for n in EXPECTED]
    result = subprocess.run([sys.executable, "-c", CLIENT, *names], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    for short, expected in EXPECTED.items():
        row = got[PREFIX + short]
        assert row["value"] == pytest.approx(expected), (short, row)
        assert row["value"] == pytest.approx(row["pyepics"]), (short, row)
        assert row["type"] == row["pyepics_type"], (short, row)
        assert row["timestamp_delta"] < 1e-5 and 0 <= row["age_s"] < 120, (short, row)
        assert (row["severity"], row["status"]) == (0, 0), (short, row)
    assert got[PREFIX + "enum"]["kind"] == "enum" and got[PREFIX + "string"]["kind"] == "string"
