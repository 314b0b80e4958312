"""Devices from the Queue Server (OAS_QSERVER_DEVICES): a real RE Manager and bluesky-httpserver
with a startup folder of their own (sim devices and EPICS signals on the session's test IOC),
and real server processes that follow it in both modes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websockets

from tests.support.qserver import API_KEY, QueueServer
from tests.support.server import ServerProcess
from tests.support.wsclient import read_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

PROFILE = """
from bluesky import RunEngine
from bluesky.plans import count  # noqa: F401 - a plan for the queue
from ophyd import EpicsSignal, EpicsSignalRO
from ophyd.sim import det, motor  # noqa: F401 - offered to the queue

RE = RunEngine({})
qs_sp = EpicsSignal("TST:m1:sp", name="qs_sp")
qs_rbv = EpicsSignalRO("TST:m1:rbv", name="qs_rbv")
hidden_rbv = EpicsSignalRO("TST:m2:rbv", name="hidden_rbv")
"""

PERMISSIONS = """
user_groups:
  root:
    allowed_plans: [null]
    forbidden_plans: [":^_"]
    allowed_devices: [null]
    forbidden_devices: [":^_:?.*"]
    allowed_functions: [null]
    forbidden_functions: [":^_"]
  primary:
    allowed_plans: [":.*"]
    forbidden_plans: [null]
    allowed_devices: [":?.*:depth=5"]
    forbidden_devices: [":^hidden"]
    allowed_functions: [":.*"]
    forbidden_functions: [null]
"""

# Ours, for merge mode: one clashes with the Queue Server's ``motor``.
OURS = """
from ophyd import Signal, SoftPositioner
motor = SoftPositioner(name="motor", init_pos=0.0)
ours = Signal(name="ours", value=1)
"""

QS_DEVICES = ["det", "motor", "qs_rbv", "qs_sp"]


@pytest.fixture(scope="module")
def qs(ioc, tmp_path_factory) -> Iterator[QueueServer]:
    folder = tmp_path_factory.mktemp("qs_registry")
    startup = folder / "startup"
    startup.mkdir()
    (startup / "00_profile.py").write_text(PROFILE)
    (folder / "permissions.yaml").write_text(PERMISSIONS)
    server = QueueServer(folder, startup=startup, permissions=folder / "permissions.yaml")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _server(qs: QueueServer, tmp: Path, mode: str, **env: str) -> ServerProcess:
    return ServerProcess({"OAS_QSERVER_DEVICES": mode, "OAS_QSERVER_STARTUP_DIR": str(qs.startup),
                          "OAS_QSERVER_DEVICES_POLL_S": "0.3", "QSERVER_HTTP_SERVER_HOST": "127.0.0.1",
                          "QSERVER_HTTP_SERVER_PORT": str(qs.http_port),
                          "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": API_KEY,
                          "OAS_ANONYMOUS_WRITES": "true", "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", **env},
                         log_path=tmp / "server.log").start(timeout=60)


def devices(server: ServerProcess) -> list[str]:
    return requests.get(f"{server.http}/api/v1/devices", timeout=10).json()["devices"]


def wait_devices(server: ServerProcess, expected: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := devices(server)) != expected:
        assert time.monotonic() < deadline, f"devices {seen}, waited for {expected}\n{server.output()}"
        time.sleep(0.2)


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        return conn.execute(sql).fetchall()


def state(database: Path) -> dict[str, Any]:
    found = rows(database, "select ok, error, allowed, not_allowed, clashes, last_good_at "
                           "from devices_qserverregistrystate where id = 1")
    if not found:
        return {}
    ok, error, allowed, not_allowed, clashes, last_good = found[0]
    return {"ok": bool(ok), "error": error, "allowed": json.loads(allowed), "not_allowed": json.loads(not_allowed),
            "clashes": json.loads(clashes), "last_good_at": last_good}


def set_permissions(qs: QueueServer, forbidden: list[str]) -> None:
    rules = qs.call("GET", "/permissions/get")["user_group_permissions"]
    rules["user_groups"]["primary"]["forbidden_devices"] = forbidden
    assert qs.call("POST", "/permissions/set", {"user_group_permissions": rules})["success"]


def close_environment(qs: QueueServer) -> None:
    if qs.status().get("worker_environment_exists"):
        assert qs.call("POST", "/environment/close")["success"]
        qs.wait_for(lambda s: not s.get("worker_environment_exists"), 60, "the environment to close")


async def test_only_mode_follows_the_queue_servers_devices_and_rebinds_sockets(qs, tmp_path):
    close_environment(qs)
    set_permissions(qs, [":^hidden"])
    server = _server(qs, tmp_path, "only")
    try:
        # Environment closed and no existing-devices file: the Queue Server knows no devices yet
        wait_devices(server, [])
        database = tmp_path / "db.sqlite3"
        assert state(database)["ok"] and state(database)["allowed"] == []
        qs.open_environment()  # its devices_existing_uid changes: the bridge reloads by itself
        wait_devices(server, QS_DEVICES)
        assert "hidden_rbv" in state(database)["not_allowed"]
        assert rows(database, "select name, origin_kind, qserver_allowed from devices_devicerecord "
                              "where name = 'qs_sp'") == [("qs_sp", "qserver", 1)]
        async with websockets.connect(f"{server.ws}/api/v1/device-socket") as conn:
            await conn.send(json.dumps({"action": "subscribe", "devices": ["qs_sp", "qs_rbv"], "id": 1}))
            summary = await read_until(conn, lambda m: m.get("id") == 1)
            assert summary["subscribed"] == ["qs_sp", "qs_rbv"], summary
            await read_until(conn, lambda m: m.get("device") == "qs_sp" and m.get("sub_type") == "meta"
                             and m.get("connected"))
            # The Queue Server stops allowing qs_rbv: picked up without restarting anything
            set_permissions(qs, [":^hidden", "qs_rbv"])
            gone = await read_until(conn, lambda m: m.get("code") == "device_gone", timeout=30)
            assert gone["device"] == "qs_rbv"
            # qs_sp is a new object after the reload: the socket is re-bound to it (fresh metadata)
            await read_until(conn, lambda m: m.get("device") == "qs_sp" and m.get("sub_type") == "meta"
                             and m.get("connected"))
            await conn.send(json.dumps({"action": "set", "device": "qs_sp", "value": 4.25, "id": "s"}))
            await read_until(conn, lambda m: m.get("device") == "qs_sp" and m.get("value") == 4.25
                             and m.get("sub_type") != "meta")
        assert devices(server) == ["det", "motor", "qs_sp"]
    finally:
        server.stop()
        set_permissions(qs, [":^hidden"])


async def test_merge_mode_reports_a_clash_and_keeps_the_last_good_devices_while_it_is_gone(qs, tmp_path):
    qs.open_environment()
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "10_ours.py").write_text(OURS)
    server = _server(qs, tmp_path, "merge", OAS_STARTUP_DIR=str(ours))
    database = tmp_path / "db.sqlite3"
    try:
        wait_devices(server, sorted([*QS_DEVICES, "ours"]))
        reply = requests.post(f"{server.http}/api/v1/load-devices", timeout=60).json()
        assert reply["status"] == "partial", reply
        assert "the Queue Server's is used" in reply["errors"]["device motor"]
        assert reply["qserver"]["clashes"] == {"motor": str(ours / "10_ours.py")}
        assert rows(database, "select name, origin_kind, qserver_allowed from devices_devicerecord "
                              "where name in ('motor', 'ours') order by name") == [
            ("motor", "qserver", 1), ("ours", "folder", 0)]
        # bluesky-httpserver goes away: a reload keeps the Queue Server's devices, and says so
        qs.stop_http()
        reply = requests.post(f"{server.http}/api/v1/load-devices", timeout=60).json()
        assert "cannot be reached" in reply["errors"]["qserver"], reply
        assert sorted(reply["qserver"]["kept"]) == QS_DEVICES
        assert devices(server) == sorted([*QS_DEVICES, "ours"])
        gone = state(database)
        assert not gone["ok"] and "cannot be reached" in gone["error"] and gone["last_good_at"]
        # It comes back: the bridge notices by itself and asks again
        qs.start_http()
        qs.wait_for(lambda s: s.get("worker_environment_exists"), 60, "bluesky-httpserver to answer")
        deadline = time.monotonic() + 30
        while not state(database)["ok"]:
            assert time.monotonic() < deadline, server.output()
            await asyncio.sleep(0.2)
        assert devices(server) == sorted([*QS_DEVICES, "ours"])
    finally:
        server.stop()
