"""The REST API against the real caproto IOC: every endpoint, its errors, and its audit rows.

Requests go through Django's AsyncClient into the in-process ASGI stack, so the bridge,
hub, access rules and audit are the server's own.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient

from devices.access import db as access_db
from devices.access.models import AccessRule, AuditEntry
from devices.services.runtime import get_hub
from tests.support.ioc import free_port

pytestmark = [pytest.mark.system, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]
FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"
API = "/api/v1"


@pytest.fixture
async def api(ioc, tmp_path, monkeypatch):
    """A client of the in-process server with the signal and device startup files loaded."""
    monkeypatch.setattr(access_db, "RULE_CACHE_S", 0.0)
    access_db.DB_RULES._cached = None
    folder = tmp_path / "startup"
    folder.mkdir()
    for name in ("00_signals.py", "10_device.py"):
        shutil.copy(FILES / name, folder / name)
    original = settings.OAS
    settings.OAS = replace(original, startup_dir=str(folder), write_rate_hz=0.0)
    assert (await (await get_hub()).reload_devices(60.0))["status"] == "ok"
    yield AsyncClient()
    settings.OAS = original


async def rows() -> list[AuditEntry]:
    return await sync_to_async(list)(AuditEntry.objects.order_by("at"))


async def test_read_a_pv_connects_on_demand_and_times_out_for_a_missing_one(api, ioc):
    reply = await api.get(f"{API}/pvs/TST:m1:rbv")
    assert reply.status_code == 200, reply.json()
    body = reply.json()
    assert body["TST:m1:rbv"]["connected"] is True
    assert isinstance(body["TST:m1:rbv"]["value"], float) and body["TST:m1:rbv"]["timestamp"] > 1e9
    assert body["meta"]["units"] == "mm" and body["meta"]["precision"] == 3
    missing = await api.get(f"{API}/pvs/NOPE:never", {"timeout": 0.5})
    assert missing.status_code == 408 and missing.json()["code"] == "not_connected"
    assert "NOPE:never" in missing.json()["error"]


async def test_connect_list_and_release_a_pv(api):
    assert (await api.get(f"{API}/pvs")).json()["PV List"] == []
    first = await api.post(f"{API}/pvs/TST:counter")
    assert first.status_code == 201 and first.json()["201"] == "PV TST:counter is connected"
    again = await api.post(f"{API}/pvs/TST:counter")
    assert again.status_code == 409 and again.json()["code"] == "already_connected"
    listed = (await api.get(f"{API}/pvs")).json()
    assert listed["PV List"] == ["TST:counter"] and listed["count"] == 1
    never = await api.post(f"{API}/pvs/NOPE:never", QUERY_STRING="timeout=0.3")
    assert never.status_code == 408
    assert (await api.get(f"{API}/pvs")).json()["pvs"] == ["TST:counter"]  # a failed connect is not held
    assert (await api.delete(f"{API}/pvs/TST:counter")).status_code == 200
    gone = await api.delete(f"{API}/pvs/TST:counter")
    assert gone.status_code == 404 and gone.json()["code"] == "not_held"


async def test_set_a_pv_waits_for_completion_and_is_audited(api, ioc):
    reply = await api.put(f"{API}/pvs", {"pv": "TST:m1:sp", "set_value": 2.5}, content_type="application/json")
    assert reply.status_code == 200, reply.json()
    body = reply.json()
    assert body["success"] is True and body["status"] == "done" and body["200"].startswith("Instruction accepted")
    assert ioc.caget("m1:sp") == pytest.approx(2.5)
    [row] = await rows()
    assert (row.path, row.target, row.outcome, row.value_requested) == ("rest", "TST:m1:sp", "done", "2.5")
    assert row.value_before != "" and float(row.readback_after) == pytest.approx(2.5)
    assert row.client == "127.0.0.1"


async def test_set_outcomes_map_to_http_status_codes(api, ioc):
    put = {"content_type": "application/json"}
    refused = await api.put(f"{API}/pvs", {"pv": "TST:refuse", "set_value": 1.0}, **put)
    assert refused.status_code == 502 and refused.json()["code"] == "ioc_refused"
    read_only = await api.put(f"{API}/pvs", {"pv": "TST:ro", "set_value": 1}, **put)
    assert read_only.status_code == 403 and read_only.json()["code"] == "read_only"
    absent = await api.put(f"{API}/pvs", {"pv": "NOPE:never", "set_value": 1, "timeout": 0.5}, **put)
    assert absent.status_code == 408 and absent.json()["code"] == "not_connected"
    slow = await api.put(f"{API}/pvs", {"pv": "TST:slow", "set_value": 3.0, "timeout": 0.3}, **put)
    assert slow.status_code == 504 and slow.json()["code"] == "timeout"
    outcomes = [r.outcome for r in await rows()]
    assert outcomes == ["ioc_refused", "read_only", "not_connected", "timeout"]


async def test_bad_requests_get_json_errors(api):
    put = {"content_type": "application/json"}
    missing = await api.put(f"{API}/pvs", {"pv": "TST:m1:sp"}, **put)
    assert missing.status_code == 422 and "set_value" in missing.json()["error"]
    not_json = await api.put(f"{API}/pvs", "{nope", **put)
    assert 400 <= not_json.status_code < 500 and "error" in not_json.json()
    bad_timeout = await api.put(f"{API}/pvs", {"pv": "TST:m1:sp", "set_value": 1, "timeout": -1}, **put)
    assert bad_timeout.status_code == 422 and "timeout" in bad_timeout.json()["error"]
    empty = await api.put(f"{API}/pvs", [], **put)
    assert empty.status_code == 422 and empty.json()["code"] == "bad_request"
    boolean_timeout = await api.put(f"{API}/pvs", {"pv": "TST:m1:sp", "set_value": 1, "timeout": True}, **put)
    assert boolean_timeout.status_code == 422
    # the sockets' name rules: no spaces (device topics), control or non-ASCII characters
    for name in ("device stage stage_sp", "TST:\x01", "TST:\u00e9"):
        spaced = await api.put(f"{API}/pvs", {"pv": name, "set_value": 1}, **put)
        assert spaced.status_code == 422 and "pv" in spaced.json()["error"], name
    spaced_read = await api.get(f"{API}/pvs/device%20stage%20stage_sp")
    assert spaced_read.status_code == 422 and "pattern" in spaced_read.json()["error"]
    unknown = await api.get(f"{API}/no-such-thing")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    wrong_method = await api.get(f"{API}/load-devices")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["allowed"]
    assert await sync_to_async(AuditEntry.objects.count)() == 0  # nothing parsed, nothing attempted


async def test_several_pvs_at_once_and_a_batch_with_one_forbidden_target_writes_nothing(api, ioc):
    put = {"content_type": "application/json"}
    both = await api.put(f"{API}/pvs", [{"pv": "TST:m1:sp", "set_value": 1.25},
                                        {"pv": "TST:m2:sp", "set_value": 4.5}], **put)
    assert both.status_code == 200 and both.json()["done"] == 2
    assert (ioc.caget("m1:sp"), ioc.caget("m2:sp")) == (pytest.approx(1.25), pytest.approx(4.5))
    partial = await api.put(f"{API}/pvs", [{"pv": "TST:m1:sp", "set_value": 1.5},
                                           {"pv": "TST:refuse", "set_value": 1}], **put)
    assert partial.status_code == 207 and partial.json()["failed"] == 1
    assert [r["http_status"] for r in partial.json()["results"]] == [200, 502]

    await sync_to_async(AccessRule.objects.create)(name="lock-m2", pattern="TST:m2:sp", level=1)
    refused = await api.put(f"{API}/pvs", [{"pv": "TST:m1:sp", "set_value": 9.0},
                                           {"pv": "TST:m2:sp", "set_value": 9.0}], **put)
    assert refused.status_code == 401 and "TST:m2:sp" in refused.json()["error"]  # anonymous: 401
    assert ioc.caget("m1:sp") == pytest.approx(1.5)  # the allowed half was not written either
    last = (await rows())[-2:]
    assert [(r.target, r.outcome) for r in last] == [("TST:m1:sp", "refused"), ("TST:m2:sp", "refused")]


async def test_devices_list_info_and_set(api, ioc):
    listed = (await api.get(f"{API}/devices")).json()
    assert set(listed["devices"]) == {"m1_sp", "m1_rbv", "stage"} and listed["count"] == 3
    info = await api.get(f"{API}/devices/stage")
    assert info.status_code == 200
    body = info.json()
    assert (body["name"], body["type"], body["prefix"], body["connected"]) == ("stage", "Stage", "TST:", True)
    assert set(body["values"]) == {"stage_sp", "stage_rbv"}
    assert body["description"]["stage_sp"]["units"] == "deg" and body["description"]["stage_sp"]["dtype"] == "number"
    ghost = await api.get(f"{API}/devices/ghost")
    assert ghost.status_code == 404 and "stage" in ghost.json()["available_devices"]
    everything = (await api.get(f"{API}/devices-info")).json()
    assert everything["count"] == 3 and everything["devices"]["m1_rbv"]["connected"] is True

    put = {"content_type": "application/json"}
    done = await api.put(f"{API}/devices", {"device": "stage", "component": "sp", "set_value": 3.5}, **put)
    assert done.status_code == 200 and done.json()["signal"] == "stage_sp", done.json()
    assert ioc.caget("m2:sp") == pytest.approx(3.5)
    signal = await api.put(f"{API}/devices", {"device": "m1_sp", "set_value": -1.0}, **put)
    assert signal.status_code == 200 and ioc.caget("m1:sp") == pytest.approx(-1.0)
    which = await api.put(f"{API}/devices", {"device": "stage", "set_value": 1}, **put)
    assert which.status_code == 400 and "component" in which.json()["error"]
    nope = await api.put(f"{API}/devices", {"device": "stage", "component": "zz", "set_value": 1}, **put)
    assert nope.status_code == 400 and nope.json()["components"] == ["sp", "rbv"]
    unknown = await api.put(f"{API}/devices", {"device": "ghost", "set_value": 1}, **put)
    assert unknown.status_code == 404
    many = await api.put(f"{API}/devices", [{"device": "stage", "component": "sp", "set_value": 0.5},
                                            {"device": "m1_sp", "set_value": 0.25}], **put)
    assert many.status_code == 200 and many.json()["done"] == 2
    audit = [(r.path, r.target, r.signal, r.outcome) for r in await rows()]
    assert audit == [("rest", "stage", "stage_sp", "done"), ("rest", "m1_sp", "m1_sp", "done"),
                     ("rest", "stage", "stage_sp", "done"), ("rest", "m1_sp", "m1_sp", "done")]


async def test_queue_server_status_unreachable_is_a_json_503(api):
    settings.OAS = replace(settings.OAS, qserver_http_port=free_port(), qserver_http_host="127.0.0.1")
    reply = await api.get(f"{API}/queue-server/status")
    assert reply.status_code == 503 and reply.json()["code"] == "qserver_unavailable"
    assert "cannot be reached" in reply.json()["error"]


async def test_openapi_schema_docs_page_and_socket_description(api):
    schema = (await api.get(f"{API}/openapi.json")).json()
    for path in ("/api/v1/pvs", "/api/v1/pvs/{pv}", "/api/v1/devices", "/api/v1/devices/{name}",
                 "/api/v1/devices-info", "/api/v1/load-devices", "/api/v1/queue-server/status", "/api/v1/sockets"):
        assert path in schema["paths"], path
    redirect = await api.get("/docs")
    assert redirect.status_code == 302 and redirect["Location"] == "/api/v1/docs"
    page = await api.get("/api/v1/docs")
    assert page.status_code == 200 and b"/static/ninja/swagger-ui-bundle.js" in page.content  # no CDN
    for asset in ("/static/ninja/swagger-ui-bundle.js", "/static/admin/css/base.css"):
        served = await api.get(asset)  # with DEBUG off, as the README's run command runs
        assert served.status_code == 200 and len(b"".join(served.streaming_content)) > 1000, asset
    sockets = (await api.get(f"{API}/sockets")).json()["sockets"]
    assert [s["path"] for s in sockets] == ["/api/v1/pv-socket", "/api/v1/device-socket", "/monitor"]
    assert "stop" in sockets[1]["actions"] and "set" in sockets[0]["actions"]


async def test_write_rate_limit_and_auth_required_on_rest(api):
    settings.OAS = replace(settings.OAS, write_rate_hz=1.0)  # bursts of 2
    put = {"content_type": "application/json"}
    codes = []
    for i in range(4):
        reply = await api.put(f"{API}/pvs", {"pv": f"TST:m{1 + i % 2}:sp", "set_value": 0.5 + i}, **put)
        codes.append((reply.status_code, reply.json().get("code")))
    assert codes[:2] == [(200, None), (200, None)] and (429, "rate_limited") in codes[2:], codes
    limited = [r for r in await rows() if "rate limit" in r.message]
    assert limited and all(r.outcome == "refused" for r in limited)

    settings.OAS = replace(settings.OAS, auth_required=True)
    for path in ("/pvs", "/pvs/TST:m1:rbv", "/devices", "/devices/stage", "/devices-info", "/queue-server/status"):
        reply = await api.get(f"{API}{path}")
        assert reply.status_code == 401 and reply.json()["code"] == "unauthenticated", (path, reply.json())


async def test_pv_names_with_a_protocol(api, ioc):
    spelled = await api.get(f"{API}/pvs/ca://TST:m1:rbv")
    assert spelled.status_code == 200, spelled.json()
    assert spelled.json()["pv"] == "ca://TST:m1:rbv" and spelled.json()["ca://TST:m1:rbv"]["connected"] is True
    held = await api.post(f"{API}/pvs/ca://TST:counter")
    assert held.status_code == 201, held.json()
    again = await api.post(f"{API}/pvs/TST:counter")  # the same PV spelled without the scheme
    assert again.status_code == 409 and again.json()["code"] == "already_connected"
    assert (await api.delete(f"{API}/pvs/TST:counter")).status_code == 200
    for bad in ("xyz://TST:m1:rbv", "pva://"):
        refused = await api.get(f"{API}/pvs/{bad}")
        assert refused.status_code == 400 and refused.json()["code"] == "bad_name", (bad, refused.json())
    put = await api.put(f"{API}/pvs", {"pv": "tango://TST:m1:sp", "set_value": 1}, content_type="application/json")
    assert put.status_code == 400 and "unknown protocol 'tango'" in put.json()["error"]
    done = await api.put(f"{API}/pvs", {"pv": "ca://TST:m1:sp", "set_value": 1.5}, content_type="application/json")
    assert done.status_code == 200 and done.json()["pv"] == "ca://TST:m1:sp", done.json()
    [row] = [r for r in await rows() if r.outcome == "done"]
    assert row.target == "TST:m1:sp"  # audited under the PV's one name
