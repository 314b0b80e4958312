"""Scaled mode: a bridge process and two server processes sharing a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
import websockets

from tests.support.redis_check import redis_available
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

P = "TST:"
DEVICES = "from ophyd import EpicsSignal\nm3 = EpicsSignal('TST:m3:sp', name='m3')\n"


@pytest.fixture(scope="module")
def scaled(ioc, tmp_path_factory):
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1:6379 is required when CI is set")
        pytest.skip("no Redis on 127.0.0.1:6379")
    db = tmp_path_factory.mktemp("db") / "scaled.sqlite3"
    startup = tmp_path_factory.mktemp("startup") / "devices.py"
    startup.write_text(DEVICES)
    env = {"OAS_STARTUP_DIR": str(startup),
           "REDIS_URL": "redis://127.0.0.1:6379/0", "OAS_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}",
           "OAS_BRIDGE": "external", "DATABASE_URL": f"sqlite:///{db}", "OAS_RELEASE_GRACE_S": "1",
           "OAS_LEASE_S": "3", "OAS_ANONYMOUS_WRITES": "true"}  # ophyd-websocket clients: no login
    bridge = ServerProcess({**env, "OAS_DEVICE_STATE_PERIOD_S": "0.5"}, command="runbridge").start()
    servers = [ServerProcess({**env, "OAS_LOAD_DEVICES_ON_START": "false"}).start(),
               ServerProcess({**env, "OAS_LOAD_DEVICES_ON_START": "false"}).start()]
    yield bridge, servers, env
    for proc in [*servers, bridge]:
        proc.stop()


async def collect(url: str, pv: str, seconds: float) -> list[dict]:
    async with websockets.connect(url) as conn:
        await conn.send(json.dumps({"action": "subscribe", "pv": pv}))
        got = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                msg = json.loads(await asyncio.wait_for(conn.recv(), max(end - loop.time(), 0.01)))
            except TimeoutError:
                break
            if msg.get("pv") == pv and msg.get("sub_type") != "meta" and "value" in msg:
                got.append(msg)
        return got


async def test_clients_on_two_processes_share_one_channel(scaled, ioc):
    bridge, servers, _ = scaled
    pv = f"{P}counter"
    urls = [f"{s.ws}/api/v1/pv-socket" for s in servers]
    baseline = (await asyncio.to_thread(ioc.channel_counts)).get(pv, 0)  # other test clients
    task_a = asyncio.create_task(collect(urls[0], pv, 6))
    task_b = asyncio.create_task(collect(urls[1], pv, 6))
    await asyncio.sleep(4)
    counts = await asyncio.to_thread(ioc.channel_counts)
    a, b = await task_a, await task_b
    assert a and b, (bridge.output(), servers[0].output())
    common = {m["timestamp"] for m in a} & {m["timestamp"] for m in b}
    assert len(common) >= 2  # the same updates reached both processes
    assert counts.get(pv, 0) - baseline == 1, counts  # one channel for both processes


async def test_set_through_either_process(scaled):
    _, servers, _ = scaled
    for i, server in enumerate(servers):
        async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
            await conn.send(json.dumps({"action": "set", "pv": f"{P}m2:sp", "value": i + 0.5, "id": i}))
            while True:
                msg = json.loads(await asyncio.wait_for(conn.recv(), 10))
                if msg.get("id") == i:
                    break
            assert msg["status"] == "done", msg


async def test_a_crashed_worker_releases_its_pvs(scaled, ioc):
    _, _, env = scaled
    pv = f"{P}m1:moving"  # a PV no other test of this module holds
    worker = ServerProcess(env).start()
    try:
        conn = await websockets.connect(f"{worker.ws}/api/v1/pv-socket")
        await conn.send(json.dumps({"action": "subscribe", "pv": pv}))
        while True:
            msg = json.loads(await asyncio.wait_for(conn.recv(), 10))
            if msg.get("pv") == pv and "value" in msg:
                break
        held = (await asyncio.to_thread(ioc.channel_counts)).get(pv, 0)
        assert held >= 1
        worker.proc.kill()  # no goodbye: only the lease can tell the bridge
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while (await asyncio.to_thread(ioc.channel_counts)).get(pv, 0) >= held:
            assert loop.time() < deadline, "the bridge kept the crashed worker's PV"
            await asyncio.sleep(0.5)
    finally:
        worker.stop()


async def test_device_socket_and_reload_across_processes(scaled, tmp_path):
    """Devices live in the bridge process; a reload posted to one server rebinds clients of both."""
    _, servers, env = scaled
    conns = [await websockets.connect(f"{s.ws}/api/v1/device-socket") for s in servers]
    try:
        for conn in conns:
            await conn.send(json.dumps({"action": "subscribe", "device": "m3", "id": "sub"}))
        for conn in conns:
            await _until(conn, lambda m: m.get("device") == "m3" and m.get("connected") and "value" in m)
        await conns[0].send(json.dumps({"action": "set", "device": "m3", "value": 7.25, "id": "set"}))
        await _until(conns[0], lambda m: m.get("id") == "set" and m.get("status") == "done")
        await _until(conns[1], lambda m: m.get("device") == "m3" and m.get("value") == 7.25)
        with open(env["OAS_STARTUP_DIR"], "w") as f:
            f.write("x = 1\n")  # m3 is gone after the next reload
        body = await asyncio.to_thread(_post, f"{servers[1].http}/api/v1/load-devices")
        assert body["removed"] == ["m3"], body
        for conn in conns:
            await _until(conn, lambda m: m.get("code") == "device_gone" and m.get("device") == "m3")
    finally:
        for conn in conns:
            await conn.close()
        with open(env["OAS_STARTUP_DIR"], "w") as f:
            f.write(DEVICES)


async def _until(conn, predicate, timeout: float = 15.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(conn.recv(), max(deadline - loop.time(), 0.01)))
        if predicate(msg):
            return msg


def _post(url: str) -> dict:
    import urllib.request

    request = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())
