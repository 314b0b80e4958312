"""The Queue Server write interlock against a real RE Manager and bluesky-httpserver.

OAS_REQUIRE_QSERVER on: idle → writes go through on every path; a plan running or paused →
every write path refuses with the reason and an ``interlocked`` audit row; the Queue Server
unreachable or refusing our key → refused (fail closed).
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient

from devices.access.models import AuditEntry
from devices.services.runtime import get_hub
from qsconsole.interlock import status_client
from tests.support.ioc import free_port
from tests.support.qserver import API_KEY

pytestmark = [pytest.mark.system, pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]
FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"


@pytest.fixture
async def interlocked(queue_server, ioc, tmp_path):
    folder = tmp_path / "startup"
    folder.mkdir()
    shutil.copy(FILES / "00_signals.py", folder / "00_signals.py")
    original = settings.OAS
    settings.OAS = replace(original, require_qserver=True, qserver_http_host="127.0.0.1",
                           qserver_http_port=queue_server.http_port, qserver_api_key=API_KEY,
                           qserver_status_cache_s=0.2, startup_dir=str(folder), write_rate_hz=0.0)
    assert (await (await get_hub()).reload_devices(60.0))["status"] == "ok"
    yield queue_server
    settings.OAS = original
    if queue_server.status().get("manager_state") != "idle":
        await asyncio.to_thread(queue_server.stop_plan)


async def ask(sock, message: dict, rid: int) -> dict:
    await sock.send({**message, "id": rid})
    return await sock.next(lambda m: m.get("id") == rid, timeout=20)


async def write_everywhere(ws, value: float) -> dict[str, tuple[int | str, str]]:
    """One set on each write path: (status or code, message)."""
    pv = await ws("/api/v1/pv-socket")
    dev = await ws("/api/v1/device-socket")
    out: dict[str, tuple[int | str, str]] = {}
    reply = await ask(pv, {"action": "set", "pv": "TST:m2:sp", "value": value, "timeout": 5}, 1)
    out["pv-socket"] = (reply.get("status") if reply.get("status") == "done" else reply["code"],
                        reply.get("error", ""))
    reply = await ask(dev, {"action": "set", "device": "m1_sp", "value": value, "timeout": 5}, 2)
    out["device-socket"] = (reply.get("status") if reply.get("status") == "done" else reply["code"],
                            reply.get("error", ""))
    rest = await AsyncClient().put("/api/v1/pvs", {"pv": "TST:m2:sp", "set_value": value},
                                   content_type="application/json")
    out["rest"] = (rest.status_code, rest.json().get("error", ""))
    return out


async def test_writes_follow_the_queue_server_state(interlocked, ws, ioc):
    qs = interlocked
    idle = await write_everywhere(ws, 1.5)
    assert {k: v[0] for k, v in idle.items()} == {"pv-socket": "done", "device-socket": "done", "rest": 200}
    assert ioc.caget("m2:sp") == pytest.approx(1.5)

    await asyncio.to_thread(qs.run_sleep_plan)
    running = await write_everywhere(ws, 2.5)
    assert {k: v[0] for k, v in running.items()} == {"pv-socket": "interlocked", "device-socket": "interlocked",
                                                      "rest": 423}, running
    assert all("a plan is running on the Queue Server" in v[1] for v in running.values()), running
    assert ioc.caget("m2:sp") == pytest.approx(1.5) and ioc.caget("m1:sp") == pytest.approx(1.5)
    status = (await AsyncClient().get("/api/v1/queue-server/status")).json()
    assert status["manager_state"] == "executing_queue" and status["writes_interlocked"] is True

    await asyncio.to_thread(qs.pause)
    paused = await write_everywhere(ws, 3.5)
    assert {v[0] for v in paused.values()} == {"interlocked", 423}
    assert all("paused" in v[1] for v in paused.values()), paused

    await asyncio.to_thread(qs.stop_plan)
    await asyncio.sleep(0.3)  # past the status cache
    again = await write_everywhere(ws, 4.5)
    assert {k: v[0] for k, v in again.items()} == {"pv-socket": "done", "device-socket": "done", "rest": 200}

    rows = await sync_to_async(list)(AuditEntry.objects.order_by("at"))
    assert [r.outcome for r in rows] == ["done"] * 3 + ["interlocked"] * 6 + ["done"] * 3
    assert {r.path for r in rows[3:9]} == {"pv-socket", "device-socket", "rest"}
    assert "Queue Server" in rows[3].message and rows[3].value_requested == "2.5"


async def test_an_unreachable_or_refusing_queue_server_refuses_writes(interlocked, ws):
    settings.OAS = replace(settings.OAS, qserver_http_port=free_port())
    down = await write_everywhere(ws, 1.0)
    assert {v[0] for v in down.values()} == {"interlocked", 423}
    assert all("cannot be reached" in v[1] for v in down.values()), down

    settings.OAS = replace(settings.OAS, qserver_http_port=interlocked.http_port, qserver_api_key="wrong")
    wrong_key = await write_everywhere(ws, 1.0)
    assert {v[0] for v in wrong_key.values()} == {"interlocked", 423}
    assert all("HTTP 401" in v[1] and "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY" in v[1]
               for v in wrong_key.values()), wrong_key
    status = await AsyncClient().get("/api/v1/queue-server/status")
    assert status.status_code == 502 and status.json()["code"] == "qserver_unavailable"


async def test_a_burst_of_writes_asks_the_queue_server_once(interlocked, ws):
    settings.OAS = replace(settings.OAS, qserver_status_cache_s=5.0)
    client = status_client()
    sock = await ws("/api/v1/pv-socket")
    before = client.requests_sent
    for i in range(20):
        await sock.send({"action": "set", "pv": f"TST:m{1 + i % 2}:sp", "value": 0.1 * i, "id": i})
    replies = await sock.expect_all(*(lambda m, i=i: m.get("id") == i for i in range(20)), timeout=30)
    # latest wins per target: some are superseded, none is interlocked
    assert {r.get("status") for r in replies} <= {"done", "superseded"} and replies[-1]["status"] == "done"
    assert client.requests_sent - before == 1
