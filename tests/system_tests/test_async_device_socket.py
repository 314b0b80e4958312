"""ophyd-async devices from a startup file beside ophyd v1 ones, through a real server process:
the device socket streams, sets and stops them like v1 devices, a device that cannot connect
(or whose connect hangs) is reported without stopping the others, a reload rebinds open
subscriptions to the new objects, and the admin's list names each device's library.

IOCs: the session's caproto demo IOC (a motor record, PVs with units and limits) and C IOC
(10 Hz counters, ao setpoints); soft signals need none.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.support.ioc import IocProcess, free_port
from tests.support.server import ServerProcess
from tests.support.wsclient import each, read_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

STARTUP = '''
import asyncio

from ophyd import EpicsSignal
from ophyd_async.core import StandardReadable, soft_signal_rw
from ophyd_async.epics.core import epics_signal_r, epics_signal_rw
from ophyd_async.epics.motor import Motor

class Counters(StandardReadable):
    def __init__(self, prefix, name=""):
        with self.add_children_as_readables():
            self.fast = epics_signal_r(float, prefix + "v0")
            self.slow = epics_signal_r(float, prefix + "v1")
        self.target = epics_signal_rw(float, prefix + "sp0")
        super().__init__(name=name)

class Hangs(StandardReadable):
    """A custom device gone wrong: its connect never returns, whatever the timeout."""

    async def connect(self, mock=False, timeout=10.0, force_reconnect=False):
        await asyncio.Event().wait()

amotor = Motor("AMOT:mtr2")                      # named by its variable (an IOC of this module's)
counters = Counters("CIO:")
gain = soft_signal_rw(float, 1.5, name="gain")
label = soft_signal_rw(str, "start", name="label")
asp = epics_signal_rw(float, "CIO:sp1")          # (the demo IOC is shared: its PVs keep their values)
broken = epics_signal_r(float, "NOPE:never:there", name="broken")
hangs = Hangs(name="hangs")
v1_sp = EpicsSignal("TST:m1:sp", name="v1_sp")   # ophyd v1 beside them
'''


@pytest.fixture(scope="module")
def motor_ioc(ca_repeater) -> Iterator[IocProcess]:
    """A demo IOC of this module's own for the motor it moves and stops: the session's demo IOC
    is shared, and its motors keep whatever state a test leaves behind."""
    proc = IocProcess("AMOT:", free_port())
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def server(ioc, c_ioc, motor_ioc, tmp_path_factory) -> Iterator[tuple[ServerProcess, str]]:
    folder = tmp_path_factory.mktemp("startup")
    (folder / "devices.py").write_text(STARTUP)
    database = tmp_path_factory.mktemp("db") / "async.sqlite3"
    addresses = f"{os.environ['EPICS_CA_ADDR_LIST']} 127.0.0.1:{motor_ioc.port}"
    proc = ServerProcess({"OAS_STARTUP_DIR": str(folder), "DATABASE_URL": f"sqlite:///{database}",
                          "OAS_LOG_LEVEL": "INFO",  # the bridge's reloads and rebindings, for a failure's report
                          "OAS_ANONYMOUS_WRITES": "true", "OAS_SCALAR_RATE_HZ": "0",
                          "OAS_ASYNC_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
                          "EPICS_CA_ADDR_LIST": addresses}).start(timeout=60)
    yield proc, str(database)
    proc.stop()


# The loader's connect timeout for ophyd-async devices (OAS_ASYNC_CONNECT_TIMEOUT_S, 10 s by
# default; shorter here, as every reload waits it out for the device whose connect hangs); its
# grace for a connect that ignores it is 1 s (devices/sources/async_runtime.py).
CONNECT_TIMEOUT_S = 5


def value_of(signal: str, value: Any = None):
    return lambda m: (m.get("signal") == signal and "value" in m and m.get("sub_type") != "meta"
                      and (value is None or m["value"] == value))


def counting(signal: str):
    """A value of ``signal`` while its whole device is connected. When the device's aggregate
    ``connected`` changes (one of its signals connects later, or a reload rebinds them), every
    signal's current value is sent again with the new flag: the same value twice, by design."""
    value = value_of(signal)
    return lambda m: value(m) and m.get("connected") is True


async def test_async_devices_stream_set_and_stop_like_v1_ones(server):
    proc, _ = server
    async with websockets.connect(f"{proc.ws}/api/v1/device-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "devices": ["amotor", "counters", "gain", "label",
                                                                         "asp", "v1_sp", "broken"], "id": 1}))
        summary = await read_until(conn, lambda m: m.get("id") == 1)
        assert summary["subscribed"] == ["amotor", "counters", "gain", "label", "asp", "v1_sp"], summary
        assert [f["device"] for f in summary["failed"]] == ["broken"]
        meta = await read_until(conn, lambda m: m.get("device") == "amotor" and m.get("sub_type") == "meta"
                                and m.get("signal") == "amotor_user_readback" and m.get("connected"))
        assert (meta["units"], meta["lower_ctrl_limit"], meta["upper_ctrl_limit"]) == ("deg", 0.0, 360.0), meta
        seen = []  # whole messages: a failure shows their connection flags and timestamps
        while len(seen) < 5:  # a C counter through ophyd-async: every scan, +1 each
            seen.append(await read_until(conn, counting("counters_fast")))
        steps = [m["value"] for m in seen]
        assert all(b > a for a, b in zip(steps, steps[1:], strict=False)), seen  # latest wins: may skip
        for i, (device, value) in enumerate([("gain", 2.75), ("label", "async"), ("asp", 6.5), ("v1_sp", 3.5)]):
            await conn.send(json.dumps({"action": "set", "device": device, "value": value, "id": f"s{i}"}))
            done, _ = await each(conn, lambda m, i=i: m.get("id") == f"s{i}",
                                 lambda m, d=device, v=value: m.get("device") == d and m.get("value") == v
                                 and m.get("sub_type") != "meta")
            assert done["status"] == "done", done
        await conn.send(json.dumps({"action": "set", "device": "amotor", "value": 300.0, "id": "move"}))
        await asyncio.sleep(0.5)  # at 45 deg/s: several seconds to go
        await conn.send(json.dumps({"action": "stop", "device": "amotor", "id": "stop"}))
        stopped, move = await each(conn, lambda m: m.get("id") == "stop", lambda m: m.get("id") == "move")
        assert stopped["status"] == "done", stopped
        assert move["status"] != "done" and "stopped at" in move["error"], move  # the set says it did not arrive


async def test_a_device_that_cannot_connect_is_reported_and_the_admin_names_libraries(server):
    proc, database = server
    reply = await asyncio.to_thread(_post_json, f"{proc.http}/api/v1/load-devices")
    assert "broken" not in reply["devices"] and {"amotor", "counters", "gain", "v1_sp"} <= set(reply["devices"])
    assert "NOPE:never:there" in reply["errors"]["device broken"], reply["errors"]
    assert "hangs" not in reply["devices"] and "hangs" in reply["errors"]["device hangs"], reply["errors"]
    rows = dict(sqlite3.connect(database).execute("SELECT name, library FROM devices_devicerecord").fetchall())
    assert "broken" not in rows and "hangs" not in rows, rows
    assert rows["amotor"] == rows["counters"] == rows["gain"] == "ophyd-async" and rows["v1_sp"] == "ophyd"
    async with websockets.connect(f"{proc.ws}/api/v1/device-socket") as conn:  # rebound after the reload
        await conn.send(json.dumps({"action": "subscribe", "device": "counters"}))
        await read_until(conn, value_of("counters_slow"))


async def test_a_device_whose_connect_hangs_is_reported_as_timed_out_while_the_others_stream(server):
    proc, _ = server
    loop = asyncio.get_running_loop()
    async with websockets.connect(f"{proc.ws}/api/v1/device-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "devices": ["counters", "hangs"], "id": 1}))
        summary = await read_until(conn, lambda m: m.get("id") == 1)
        assert summary["subscribed"] == ["counters"] and [f["device"] for f in summary["failed"]] == ["hangs"]
        started = loop.time()
        posted = asyncio.create_task(asyncio.to_thread(_post_json, f"{proc.http}/api/v1/load-devices"))
        during = []  # the loader waits out the hang on its own threads: the bridge keeps streaming
        # Read until the reload answers: a client that stops reading fills its websockets queue,
        # and its closing handshake then waits out close_timeout (10 s; websockets issue #1555).
        while not posted.done() and loop.time() - started < CONNECT_TIMEOUT_S + 15:
            during.append((await read_until(conn, counting("counters_fast")))["value"])
        reply = await posted
        elapsed = loop.time() - started
        assert len(during) >= 3 * (CONNECT_TIMEOUT_S - 2), during  # the 10 Hz counter, not stalled
        assert CONNECT_TIMEOUT_S <= elapsed < CONNECT_TIMEOUT_S + 15, elapsed  # waited the timeout, not forever
        assert reply["errors"]["device hangs"] == f"hangs did not connect within {CONNECT_TIMEOUT_S} s", reply
        assert reply["status"] == "partial" and "hangs" not in reply["devices"], reply
        assert {"amotor", "counters", "gain", "label", "asp", "v1_sp"} <= set(reply["loaded"]), reply
        assert reply["files"][0]["ok"] and "hangs" not in reply["files"][0]["devices"], reply["files"]
        after = (await read_until(conn, counting("counters_fast")))["value"]
        assert after > during[-1], (during[-1], after)  # still counting after the reload
    async with websockets.connect(f"{proc.ws}/api/v1/device-socket") as conn:  # the loaded ones serve
        await conn.send(json.dumps({"action": "subscribe", "devices": ["counters", "label", "hangs"], "id": 2}))
        summary = await read_until(conn, lambda m: m.get("id") == 2)
        assert summary["subscribed"] == ["counters", "label"], summary
        assert [f["device"] for f in summary["failed"]] == ["hangs"], summary
        await each(conn, value_of("counters_slow"), value_of("label"))


async def test_a_reload_rebinds_open_subscriptions_to_the_new_async_objects(server):
    proc, _ = server
    async with websockets.connect(f"{proc.ws}/api/v1/device-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "devices": ["counters", "gain"], "id": 1}))
        await read_until(conn, lambda m: m.get("id") == 1)
        # gain's startup value is 1.5: set another, so that seeing 1.5 again means a new object
        await conn.send(json.dumps({"action": "set", "device": "gain", "value": 4.25, "id": "before"}))
        done, _ = await each(conn, lambda m: m.get("id") == "before", value_of("gain", 4.25))
        assert done["status"] == "done", done
        posted = asyncio.create_task(asyncio.to_thread(_post_json, f"{proc.http}/api/v1/load-devices"))
        # the reply and the rebinding's first value may come either way round
        try:
            fresh = await read_until(conn, value_of("gain", 1.5), timeout=3 * CONNECT_TIMEOUT_S + 15)
        except TimeoutError as exc:
            reload = await posted if posted.done() else "the reload had not answered"
            raise AssertionError(f"gain was not rebound; reload: {reload}") from exc
        assert fresh["device"] == "gain", fresh
        reply = await posted
        assert {"counters", "gain"} <= set(reply["loaded"]) and reply["removed"] == [], reply
        steps = []  # values keep coming (a stale old object's would too: gain shows the rebinding)
        while len(steps) < 5:
            steps.append((await read_until(conn, counting("counters_fast")))["value"])
        assert all(b > a for a, b in zip(steps, steps[1:], strict=False)), steps  # latest wins: may skip
        await conn.send(json.dumps({"action": "set", "device": "gain", "value": 8.5, "id": "after"}))
        done, _ = await each(conn, lambda m: m.get("id") == "after", value_of("gain", 8.5))
        assert done["status"] == "done", done
    async with websockets.connect(f"{proc.ws}/api/v1/device-socket") as conn:  # the registry's gain is it
        await conn.send(json.dumps({"action": "subscribe", "device": "gain", "id": 2}))
        await read_until(conn, value_of("gain", 8.5))


def _post_json(url: str) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())
