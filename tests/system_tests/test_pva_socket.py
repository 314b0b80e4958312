"""pva:// PVs through a real server process, against a real PV Access server (p4p SharedPVs in
a subprocess, tests/support/pva_server.py): the pv-socket, /monitor and REST, sets with the
server's outcome, an unmapped structure, and a server that dies and comes back."""

from __future__ import annotations

import asyncio
import io
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import websockets

from tests.support.pva_server import DOUBLE_LIMITS, ENUM_CHOICES, PvaServerProcess
from tests.support.redis_check import redis_available
from tests.support.server import ServerProcess
from tests.support.wsclient import each, read_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def pva_server() -> Iterator[PvaServerProcess]:
    proc = PvaServerProcess("PVA:")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def server(pva_server) -> Iterator[ServerProcess]:
    """ophydsite with its PVA client pointed at the test server only (EPICS_PVA_* variables)."""
    proc = ServerProcess({**pva_server.client_conf(), "OAS_ANONYMOUS_WRITES": "true"}).start()
    yield proc
    proc.stop()






def value_of(pv: str, value: Any = None):
    return lambda m: (m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"
                      and (value is None or m["value"] == value))


def meta_of(pv: str):
    return lambda m: m.get("pv") == pv and m.get("sub_type") == "meta"


async def test_a_pva_scalar_streams_with_its_metadata_and_sets_report_the_servers_outcome(server):
    pv = "pva://PVA:double"
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "pv": pv, "id": 1}))
        summary = await read_until(conn, lambda m: m.get("id") == 1)
        assert summary["subscribed"] == [pv], summary
        meta = await read_until(conn, meta_of(pv))
        assert (meta["units"], meta["precision"], meta["connected"]) == ("mm", 3, True), meta
        assert (meta["lower_ctrl_limit"], meta["upper_ctrl_limit"]) == DOUBLE_LIMITS
        await read_until(conn, value_of(pv))
        await conn.send(json.dumps({"action": "set", "pv": pv, "value": 2.5, "id": 2}))
        done, _ = await each(conn, lambda m: m.get("id") == 2, value_of(pv, 2.5))  # in either order
        assert (done["status"], done["target"]) == ("done", pv), done
        await conn.send(json.dumps({"action": "set", "pv": pv, "value": DOUBLE_LIMITS[1] + 1, "id": 3}))
        refused = await read_until(conn, lambda m: m.get("id") == 3)
        assert refused["status"] not in ("done", None), refused
        # the server checks its control limits first: the bridge's own limit check answers the same
        assert "limit" in refused["error"].lower() or "range" in refused["error"].lower(), refused


async def test_enum_counter_array_and_an_unmapped_structure_on_one_socket(server, pva_server):
    names = {kind: f"pva://PVA:{kind}" for kind in ("enum", "counter", "array", "custom")}
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "pvs": list(names.values()), "id": 1}))
        enum_meta, _, custom = await each(conn, meta_of(names["enum"]), value_of(names["array"]),
                                          meta_of(names["custom"]))
        assert enum_meta["enum_strs"] == ENUM_CHOICES
        assert custom["code"] == "unsupported_type" and custom["error"], custom
        await conn.send(json.dumps({"action": "set", "pv": names["enum"], "value": "Fault", "id": 2}))
        done, _ = await each(conn, lambda m: m.get("id") == 2, value_of(names["enum"], ENUM_CHOICES.index("Fault")))
        assert done["status"] == "done", done
        counts = []
        while len(counts) < 10:
            counts.append((await read_until(conn, value_of(names["counter"])))["value"])
        assert counts == sorted(counts) and len(set(counts)) == 10, counts  # 10 Hz, in order
        await conn.send(json.dumps({"action": "set", "pv": names["custom"], "value": 1, "id": 3}))
        assert (await read_until(conn, lambda m: m.get("id") == 3))["status"] != "done"
        await conn.send(json.dumps({"action": "subscribe", "pv": "pva://", "id": 4}))  # the socket still answers
        bad = await read_until(conn, lambda m: m.get("id") == 4)
        assert bad["failed"][0]["error"] == "no PV name after pva://"


async def test_monitor_and_rest_take_pva_names(server):
    async with websockets.connect(f"{server.ws}/monitor") as conn:
        await conn.send(json.dumps({"action": "connect", "pv": "pva://PVA:counter"}))
        message = await read_until(conn, lambda m: m.get("msg_type") == "monitor")
        assert message["pvname"] == "pva://PVA:counter" and isinstance(message["value"], int)
    body = await asyncio.to_thread(_get_json, f"{server.http}/api/v1/pvs/pva://PVA:string")
    assert body["pv"] == "pva://PVA:string" and isinstance(body["pva://PVA:string"]["value"], str), body


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


async def test_a_pva_server_that_dies_and_returns(server, pva_server):
    pv = "pva://PVA:counter"
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "pv": pv}))
        await read_until(conn, value_of(pv))
        await asyncio.to_thread(pva_server.stop)
        lost = await read_until(conn, lambda m: m.get("pv") == pv and m.get("connected") is False, timeout=5)
        assert lost["connected"] is False
        await asyncio.to_thread(pva_server.start)
        back = await read_until(conn, lambda m: value_of(pv)(m) and m.get("connected") is True, timeout=20)
        assert back["connected"] is True


class CameraViewer:
    """A camera-socket client of the server process: JSON messages and JPEG frames apart."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def json(self, where: Any = lambda m: True, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.conn.recv()
                if isinstance(message, str) and where(parsed := json.loads(message)):
                    return parsed

    async def frame(self, timeout: float = 10.0) -> Any:
        from PIL import Image

        async with asyncio.timeout(timeout):
            while True:
                message = await self.conn.recv()
                if isinstance(message, bytes):
                    picture = Image.open(io.BytesIO(message))
                    picture.load()
                    return picture


@pytest.mark.parametrize(("pv", "settings"), [
    ("image", {"x": 64, "y": 48, "colorMode": "Mono", "dataType": "UInt16"}),
    ("image_lz4", {"x": 64, "y": 48, "colorMode": "Mono", "dataType": "UInt16"}),
    ("image_rgb", {"x": 32, "y": 24, "colorMode": "RGB1", "dataType": "UInt8"}),
])
async def test_the_camera_socket_shows_an_ntndarray(server, pv, settings):
    async with websockets.connect(f"{server.ws}/api/v1/camera-socket") as conn:
        viewer = CameraViewer(conn)
        await conn.send(json.dumps({"imageArray_PV": f"pva://PVA:{pv}", "frameInfo": True,
                                    "toggleLogNormalization": False}))
        assert await viewer.json(lambda m: "x" in m) == settings
        counters = []
        for _ in range(3):
            info = await viewer.json(lambda m: "frame" in m)
            picture = await viewer.frame()
            counters.append(info["frame"])
            assert picture.size == (settings["x"], settings["y"])
            assert picture.mode == ("RGB" if settings["colorMode"] == "RGB1" else "L")
        assert counters == sorted(counters) and len(set(counters)) == 3  # uniqueId is the counter
        if pv != "image_rgb":  # the ramp survives: left columns darker than right ones
            pixels = np.asarray(picture, dtype=float)
            assert pixels[:, :8].mean() < pixels[:, -8:].mean() or pixels.std() > 10
        else:
            red, _, blue = np.asarray(picture, dtype=float).reshape(-1, 3).mean(axis=0)
            assert red > 150 and blue < 60  # channels in their place


async def test_the_camera_socket_refuses_a_codec_it_cannot_decode(server):
    async with websockets.connect(f"{server.ws}/api/v1/camera-socket") as conn:
        viewer = CameraViewer(conn)
        await conn.send(json.dumps({"imageArray_PV": "pva://PVA:image_blosc"}))
        problem = await viewer.json(lambda m: m.get("code") == "bad_codec")
        assert "'blosc'" in problem["error"], problem
    async with websockets.connect(f"{server.ws}/api/v1/camera-socket") as conn:
        viewer = CameraViewer(conn)
        for name, why in (("tango://X", "unknown protocol 'tango'"), ("pva://", "no PV name after pva://")):
            await conn.send(json.dumps({"imageArray_PV": name}))
            refused = await viewer.json(lambda m: "error" in m)
            assert refused["code"] == "bad_field" and why in refused["error"], refused
        await conn.send(json.dumps({"imageArray_PV": "pva://PVA:image"}))  # the same socket, now right
        assert (await viewer.json(lambda m: "x" in m))["x"] == 64


# ophyd-async devices for the bridge in scaled mode: a soft signal and a PVA signal.
ASYNC_DEVICES = """
from ophyd_async.core import soft_signal_rw
from ophyd_async.epics.core import epics_signal_rw
asoft = soft_signal_rw(float, 1.0)
apva = epics_signal_rw(float, "pva://PVA:double")
"""


@pytest.fixture(scope="module")
def scaled(pva_server, tmp_path_factory) -> Iterator[list[ServerProcess]]:
    """Scaled mode: one runbridge and two servers sharing a real Redis, the bridge with the
    PVA client configuration (the servers never open PVs themselves)."""
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1:6379 is required when CI is set")
        pytest.skip("no Redis on 127.0.0.1:6379")
    startup = tmp_path_factory.mktemp("startup") / "async_devices.py"
    startup.write_text(ASYNC_DEVICES)
    env = {**pva_server.client_conf(), "REDIS_URL": "redis://127.0.0.1:6379/0",
           "OAS_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}", "OAS_BRIDGE": "external",
           "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('db') / 'scaled.sqlite3'}",
           "OAS_ANONYMOUS_WRITES": "true", "OAS_STARTUP_DIR": str(startup)}
    bridge = ServerProcess(env, command="runbridge").start(timeout=60)
    servers = [ServerProcess({**env, "OAS_LOAD_DEVICES_ON_START": "false"}).start() for _ in range(2)]
    yield servers
    for proc in [*servers, bridge]:
        proc.stop()


async def test_scaled_mode_serves_a_pva_pv_to_both_servers_and_sets_through_either(scaled):
    pv = "pva://PVA:int"
    conns = [await websockets.connect(f"{s.ws}/api/v1/pv-socket") for s in scaled]
    try:
        for conn in conns:
            await conn.send(json.dumps({"action": "subscribe", "pvs": [pv, "pva://PVA:counter"]}))
            await read_until(conn, value_of(pv))
        for i, (writer, value) in enumerate([(conns[0], 17), (conns[1], 23)]):
            await writer.send(json.dumps({"action": "set", "pv": pv, "value": value, "id": i}))
            done, _ = await each(writer, lambda m, i=i: m.get("id") == i, value_of(pv, value))
            assert done["status"] == "done", done
            other = conns[1 - conns.index(writer)]
            await read_until(other, value_of(pv, value))  # the other server's client sees it too
        firsts = [(await read_until(conn, value_of("pva://PVA:counter")))["value"] for conn in conns]
        assert abs(firsts[0] - firsts[1]) <= 3  # one upstream stream, both servers in step
    finally:
        for conn in conns:
            await conn.close()


async def test_scaled_mode_serves_ophyd_async_devices_to_both_servers(scaled):
    conns = [await websockets.connect(f"{s.ws}/api/v1/device-socket") for s in scaled]
    try:
        for conn in conns:
            await conn.send(json.dumps({"action": "subscribe", "devices": ["asoft", "apva"], "id": 1}))
            summary = await read_until(conn, lambda m: m.get("id") == 1, timeout=30)
            assert summary["subscribed"] == ["asoft", "apva"], summary
        for i, (device, value) in enumerate([("asoft", 4.25), ("apva", -2.5)]):
            writer, other = conns[i], conns[1 - i]
            await writer.send(json.dumps({"action": "set", "device": device, "value": value, "id": f"s{i}"}))
            done, _ = await each(writer, lambda m, i=i: m.get("id") == f"s{i}",
                                 lambda m, d=device, v=value: m.get("device") == d and m.get("value") == v)
            assert done["status"] == "done", done
            await read_until(other, lambda m, d=device, v=value: m.get("device") == d and m.get("value") == v)
    finally:
        for conn in conns:
            await conn.close()
