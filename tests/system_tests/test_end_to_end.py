"""Through a real listening server (uvicorn subprocess) with a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request

import psutil
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(90)]

P = "TST:"
STALL_S = 2.0


@pytest.fixture(scope="module")
def server(ioc, tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "e2e.sqlite3"
    proc = ServerProcess({"DATABASE_URL": f"sqlite:///{db}", "OAS_ANONYMOUS_WRITES": "true",
                          "OAS_CLIENT_STALL_TIMEOUT_S": str(STALL_S),
                          "OAS_CLIENT_CLOSE_WAIT_S": "10"})
    proc.start()
    yield proc
    proc.stop()


async def recv_json(conn, where, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(conn.recv(), max(deadline - loop.time(), 0.01)))
        if where(msg):
            return msg


async def test_subscribe_and_set_over_a_real_socket(server):
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "pv": f"{P}m3:sp", "id": "a"}))
        summary = await recv_json(conn, lambda m: m.get("id") == "a")
        assert summary["subscribed"] == [f"{P}m3:sp"]
        await recv_json(conn, lambda m: m.get("pv") == f"{P}m3:sp" and "value" in m)
        await conn.send(json.dumps({"action": "set", "pv": f"{P}m3:sp", "value": 0.25, "id": "b"}))
        # the new value may arrive before or after the outcome reply
        seen = await recv_json(conn, lambda m: m.get("id") == "b" or m.get("value") == 0.25)
        other = (lambda m: m.get("value") == 0.25) if "id" in seen else (lambda m: m.get("id") == "b")
        second = await recv_json(conn, other)
        done = seen if "id" in seen else second
        assert done["status"] == "done"


async def test_start_page_and_health(server):
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(server.http + "/").read().decode())
    assert "pv-socket" in body
    health = await asyncio.to_thread(
        lambda: json.loads(urllib.request.urlopen(server.http + "/api/v1/health").read()))
    assert health["status"] == "ok" and health["bridge"] == "embedded"


async def test_the_bridge_starts_with_the_server_not_with_the_first_client(ioc, tmp_path):
    proc = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/eager.sqlite3"}).start()
    try:  # no WebSocket yet: the health answer shows an embedded bridge holding nothing
        health = await asyncio.to_thread(
            lambda: json.loads(urllib.request.urlopen(proc.http + "/api/v1/health").read()))
        assert health["pvs"] == 0 and "published" in health
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()  # the lifespan shutdown released everything cleanly


async def test_foreign_origin_is_refused_and_allowed_ones_pass(server):
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(f"{server.ws}/api/v1/pv-socket", origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket", origin="http://localhost:3000") as conn:
        await conn.send(json.dumps({"action": "refresh", "id": 1}))
        assert (await recv_json(conn, lambda m: m.get("id") == 1))["action"] == "refresh"
    assert "refused WebSocket" in server.output()


async def test_stuck_client_is_closed_with_1013_without_hurting_others(server):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    proc = psutil.Process(server.proc.pid)
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as good:
        await good.send(json.dumps({"action": "subscribe", "pv": f"{P}sine"}))
        await recv_json(good, lambda m: m.get("pv") == f"{P}sine" and "value" in m)
        stuck = await websockets.connect(f"{server.ws}/api/v1/pv-socket", sock=sock, max_queue=1,
                                         max_size=None)
        await stuck.send(json.dumps({"action": "subscribe", "pvs": [f"{P}bigwave", f"{P}sine"]}))
        rss_start = proc.memory_info().rss
        received = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + STALL_S + 4
        while loop.time() < end:  # the good client keeps its 10 Hz stream meanwhile
            msg = json.loads(await asyncio.wait_for(good.recv(), 1.0))
            received += msg.get("pv") == f"{P}sine"
        assert received >= 40
        rss_growth = proc.memory_info().rss - rss_start
        assert rss_growth < 40 * 1024 * 1024, f"server grew {rss_growth / 1e6:.1f} MB for one stuck client"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(stuck.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "closing stuck client" in server.output()


async def test_fresh_server_survives_a_first_subscribe_of_many_pvs(ioc, tmp_path):
    """Regression: concurrent first channel opens created several libca contexts (SIGSEGV)."""
    real = [f"{P}{s}" for s in ("sine", "counter", "mode", "label", "longtext", "wave", "iwave", "ro",
                                "temp", "slow", "clamp", "flaky", "m1:sp", "m1:rbv", "m2:sp", "m2:rbv",
                                "m3:sp", "m3:rbv", "m1:moving", "m2:moving", "m3:moving")]
    names = real + [f"{P}absent{i}" for i in range(100 - len(real))]
    for attempt in range(3):
        proc = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/fresh{attempt}.sqlite3"}).start()
        try:
            async with websockets.connect(f"{proc.ws}/api/v1/pv-socket") as conn:
                await conn.send(json.dumps({"action": "subscribe", "pvs": names}))
                seen: set[str] = set()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 15
                while seen != set(real) and loop.time() < deadline:
                    msg = json.loads(await asyncio.wait_for(conn.recv(), 15))
                    if msg.get("connected") and "value" in msg and msg.get("sub_type") != "meta":
                        seen.add(msg["pv"])
                assert seen == set(real), proc.output()
            assert proc.proc.poll() is None, proc.output()
        finally:
            proc.stop()


async def test_client_that_never_reads_is_cut_off(ioc, tmp_path):
    proc = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/cut.sqlite3",
                          "OAS_CLIENT_STALL_TIMEOUT_S": "1", "OAS_CLIENT_CLOSE_WAIT_S": "1"}).start()
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", proc.port))
        local_port = sock.getsockname()[1]
        stuck = await websockets.connect(f"{proc.ws}/api/v1/pv-socket", sock=sock, max_queue=1,
                                         max_size=None, ping_interval=None)
        await stuck.send(json.dumps({"action": "subscribe", "pv": f"{P}bigwave"}))
        server = psutil.Process(proc.proc.pid)

        def held() -> bool:
            return any(c.raddr and c.raddr.port == local_port for c in server.net_connections())

        assert held()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while held():  # fill time + 1 s stall + 1 s close wait, then the server aborts
            assert loop.time() < deadline, "the server still holds a client that never reads"
            await asyncio.sleep(0.5)
        assert "closing stuck client" in proc.output()
        assert "Task exception was never retrieved" not in proc.output()
        stuck.transport.abort()
    finally:
        proc.stop()


async def test_serve_demo_shows_live_values(tmp_path, ca_repeater):
    """The README's run command: `serve --demo` brings its own IOC with live PVs."""
    proc = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/demo.sqlite3"})
    proc.start_args = ["--demo"]
    proc.start(timeout=60)
    try:
        page = await asyncio.to_thread(lambda: urllib.request.urlopen(proc.http + "/").read().decode())
        assert "DEMO:sine" in page and "pva://DEMO:pva:sine" in page
        async with websockets.connect(f"{proc.ws}/api/v1/pv-socket") as conn:
            await conn.send(json.dumps({"action": "subscribe", "pvs": ["DEMO:sine", "DEMO:m1:sp"]}))
            values = []
            while len(values) < 5:
                msg = json.loads(await asyncio.wait_for(conn.recv(), 10))
                if msg.get("pv") == "DEMO:sine" and "value" in msg and msg.get("sub_type") != "meta":
                    assert msg["connected"] is True
                    values.append(msg["value"])
            assert len(set(values)) > 1  # it moves
        async with websockets.connect(f"{proc.ws}/api/v1/device-socket") as conn:
            devices = ["motor1", "slit", "stage", "async_motor", "pva_beam"]  # ophyd and ophyd-async
            await conn.send(json.dumps({"action": "subscribe", "devices": devices, "id": 1}))
            seen: set[str] = set()
            while seen != set(devices):
                msg = json.loads(await asyncio.wait_for(conn.recv(), 15))
                if msg.get("id") == 1:
                    assert msg["subscribed"] == devices, msg
                if "value" in msg and msg.get("sub_type") != "meta" and msg["connected"]:
                    seen.add(msg["device"])
        assert 'id="camera"' in page and "camera-socket" in page  # the start page shows the camera
        async with websockets.connect(f"{proc.ws}/api/v1/camera-socket") as conn:  # what it opens
            await conn.send(json.dumps({"camera": "sim", "max_fps": 10}))
            assert json.loads(await asyncio.wait_for(conn.recv(), 10))["x"] == 640
            frame = await asyncio.wait_for(conn.recv(), 10)
            assert isinstance(frame, bytes) and frame[:2] == b"\xff\xd8"  # a JPEG
        async with websockets.connect(f"{proc.ws}/api/v1/pv-socket") as conn:  # and PV Access
            pvs = ["pva://DEMO:pva:sine", "pva://DEMO:pva:mode", "pva://DEMO:pva:wave"]
            await conn.send(json.dumps({"action": "subscribe", "pvs": pvs}))
            seen = set()
            while seen != set(pvs):
                msg = json.loads(await asyncio.wait_for(conn.recv(), 15))
                if msg.get("pv") in pvs and "value" in msg and msg.get("sub_type") != "meta" and msg["connected"]:
                    seen.add(msg["pv"])
            await conn.send(json.dumps({"action": "set", "pv": "pva://DEMO:pva:mode", "value": "On", "id": 2}))
            while (msg := json.loads(await asyncio.wait_for(conn.recv(), 10))).get("id") != 2:
                pass
            assert msg["status"] == "done", msg
        async with websockets.connect(f"{proc.ws}/api/v1/camera-socket") as conn:
            await conn.send(json.dumps({"imageArray_PV": "pva://DEMO:pva:image", "max_fps": 10}))
            assert json.loads(await asyncio.wait_for(conn.recv(), 10))["x"] == 256
            assert (await asyncio.wait_for(conn.recv(), 10))[:2] == b"\xff\xd8"
        helpers = psutil.Process(proc.proc.pid).children()  # the demo IOCs (and a repeater)
        assert any("devices.demo.ioc" in " ".join(h.cmdline()) for h in helpers)
        assert any("devices.demo.pva_ioc" in " ".join(h.cmdline()) for h in helpers)
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()
    deadline = asyncio.get_running_loop().time() + 5
    while any(_alive(h) for h in helpers):  # they must not outlive the server
        assert asyncio.get_running_loop().time() < deadline, "serve --demo left its IOC running"
        await asyncio.sleep(0.3)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def test_audit_sees_the_client_behind_a_trusted_proxy(server, ioc):
    """uvicorn believes X-Forwarded-For from 127.0.0.1 (OAS_TRUSTED_PROXIES' default)."""
    import sqlite3

    async with websockets.connect(f"{server.ws}/api/v1/pv-socket",
                                  additional_headers={"X-Forwarded-For": "10.7.7.7"}) as conn:
        await conn.send(json.dumps({"action": "set", "pv": "TST:m3:sp", "value": 2.0, "id": "p"}))
        while json.loads(await asyncio.wait_for(conn.recv(), 10)).get("id") != "p":
            pass
    db = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    rows = await asyncio.to_thread(lambda: sqlite3.connect(db).execute(
        "select client, outcome from devices_auditentry where target = 'TST:m3:sp'").fetchall())
    assert ("10.7.7.7", "done") in rows, rows
