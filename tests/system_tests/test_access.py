"""Access rules and the write audit on every socket, against the real IOC and database.

Browser-like clients authenticate with Django's session cookie; the policy is the default
one (anonymous may read, writes need a rule or the default-write permission).
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client as HttpClient

from devices.access import db as access_db
from devices.access.models import AccessRule, AuditEntry
from devices.services.runtime import get_hub

pytestmark = [pytest.mark.system, pytest.mark.timeout(90), pytest.mark.django_db(transaction=True)]
FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"


@pytest.fixture(autouse=True)
def strict_policy(monkeypatch):
    """The default policy (no anonymous writes) and rules read at every request."""
    monkeypatch.setattr(access_db, "RULE_CACHE_S", 0.0)
    access_db.DB_RULES._cached = None
    original = settings.OAS
    settings.OAS = replace(original, anonymous_writes=False)
    yield
    settings.OAS = original


@sync_to_async
def make_user(name: str, *groups: str) -> str:
    """A user in ``groups``; returns a session cookie for it."""
    user = User.objects.create_user(name, password="pw-123456")
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    http = HttpClient()
    http.force_login(user)
    return f"sessionid={http.cookies['sessionid'].value}"


@sync_to_async
def rule(name: str, pattern: str, level: int, *, groups: tuple[str, ...] = (), target: str = "any") -> None:
    row = AccessRule.objects.create(name=name, pattern=pattern, level=level, target=target)
    for group in groups:
        row.groups.add(Group.objects.get_or_create(name=group)[0])


@sync_to_async
def audit_rows() -> list[AuditEntry]:
    return list(AuditEntry.objects.order_by("at"))


class Sock:
    def __init__(self, path: str, cookie: str | None = None) -> None:
        from ophydsite.asgi import application

        headers = [(b"cookie", cookie.encode())] if cookie else []
        self.comm = WebsocketCommunicator(application, path, headers=headers)

    async def __aenter__(self) -> Sock:
        connected, _ = await self.comm.connect(timeout=10)
        assert connected
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.comm.disconnect()

    async def ask(self, message: dict, where=None, timeout: float = 10.0) -> dict:
        if message:
            await self.comm.send_json_to(message)
        rid = message.get("id")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await asyncio.wait_for(self.comm.output_queue.get(), max(deadline - loop.time(), 0.01))
            if event["type"] != "websocket.send":
                raise ConnectionError(event)
            import json

            msg = json.loads(event["text"])
            if (where or (lambda m: m.get("id") == rid))(msg):
                return msg


def value_of(pv):
    return lambda m: m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"


async def test_anonymous_reads_but_may_not_write_and_the_refusal_is_on_record(ioc):
    async with Sock("/api/v1/pv-socket") as anon:
        await anon.comm.send_json_to({"action": "subscribe", "pv": "TST:m1:sp"})
        summary = await anon.ask({"action": "subscribe", "pv": "TST:m1:rbv", "id": 1})
        assert summary["subscribed"] == ["TST:m1:rbv"]
        value = await anon.ask({"action": "refresh", "id": 2}, where=value_of("TST:m1:sp"))
        assert value["write_access"] is False  # the truth for this client
        err = await anon.ask({"action": "set", "pv": "TST:m1:sp", "value": 1.0, "id": 3})
        assert err["code"] == "forbidden" and "anonymous" in err["error"]
    [row] = await audit_rows()
    assert (row.username, row.path, row.target, row.outcome, row.value_requested) == (
        "", "pv-socket", "TST:m1:sp", "refused", "1.0")


async def test_user_without_rule_is_refused_user_with_rule_writes_and_both_are_audited(ioc):
    viewer = await make_user("viewer")
    operator = await make_user("op", "operators")
    await rule("ops-m1", "TST:m1:*", 2, groups=("operators",))
    async with Sock("/api/v1/pv-socket", viewer) as sock:
        err = await sock.ask({"action": "set", "pv": "TST:m1:sp", "value": 2.0, "id": 1})
        assert err["code"] == "forbidden" and "default policy" in err["error"]
    async with Sock("/api/v1/pv-socket", operator) as sock:
        value = await sock.ask({"action": "subscribe", "pv": "TST:m1:sp"}, where=value_of("TST:m1:sp"))
        assert value["write_access"] is True
        done = await sock.ask({"action": "set", "pv": "TST:m1:sp", "value": 2.5, "timeout": 5, "id": 2})
        assert done["status"] == "done"
    refused, allowed = await audit_rows()
    assert (refused.username, refused.outcome, refused.rule) == ("viewer", "refused", "")
    assert (allowed.username, allowed.outcome, allowed.rule, allowed.value_requested) == ("op", "done", "ops-m1", "2.5")
    assert allowed.readback_after == "2.5" and allowed.value_before != "" and allowed.duration_s is not None
    assert allowed.user_id is not None and allowed.path == "pv-socket"


async def test_a_none_rule_hides_a_pv_on_the_pv_socket_and_monitor(ioc):
    await rule("hide-ro", "TST:ro", 0)
    async with Sock("/api/v1/pv-socket") as sock:
        summary = await sock.ask({"action": "subscribe", "pvs": ["TST:ro", "TST:counter"], "id": 1})
        assert summary["subscribed"] == ["TST:counter"]
        assert summary["failed"][0]["code"] == "forbidden" and "hide-ro" in summary["failed"][0]["error"]
    async with Sock("/monitor") as sock:
        err = await sock.ask({"action": "connect", "pv": "TST:ro"}, where=lambda m: m.get("msg_type") == "error")
        assert err["code"] == "forbidden"


async def test_a_rule_added_in_the_admin_applies_without_a_restart(ioc):
    operator = await make_user("op2", "operators")
    async with Sock("/api/v1/pv-socket", operator) as sock:
        assert (await sock.ask({"action": "set", "pv": "TST:m2:sp", "value": 1, "id": 1}))["code"] == "forbidden"
        await rule("ops-m2", "TST:m2:sp", 2, groups=("operators",))
        assert (await sock.ask({"action": "set", "pv": "TST:m2:sp", "value": 1, "timeout": 5, "id": 2}))[
            "status"] == "done"


async def test_device_socket_follows_device_rules_and_audits_the_signal(ioc, tmp_path):
    folder = tmp_path / "startup"
    folder.mkdir()
    shutil.copy(FILES / "00_signals.py", folder / "00_signals.py")
    original = settings.OAS
    settings.OAS = replace(original, startup_dir=str(folder))
    try:
        assert (await (await get_hub()).reload_devices(60.0))["status"] == "ok"
        operator = await make_user("op3", "operators")
        await rule("ops-devices", "m1_*", 2, groups=("operators",), target="device")
        await rule("no-pv-rule-for-devices", "m1_sp", 0, target="pv")  # a PV rule does not touch devices
        async with Sock("/api/v1/device-socket") as anon:
            err = await anon.ask({"action": "set", "device": "m1_sp", "value": 1, "id": 1})
            assert err["code"] == "forbidden"
        async with Sock("/api/v1/device-socket", operator) as sock:
            done = await sock.ask({"action": "set", "device": "m1_sp", "value": 3.5, "timeout": 5, "id": 2})
            assert done["status"] == "done", done
    finally:
        settings.OAS = original
    refused, allowed = await audit_rows()
    assert (refused.path, refused.target, refused.outcome) == ("device-socket", "m1_sp", "refused")
    assert (allowed.username, allowed.signal, allowed.outcome, allowed.rule) == ("op3", "m1_sp", "done", "ops-devices")


async def test_a_write_whose_audit_record_cannot_be_stored_is_refused(ioc):
    operator = await make_user("op4", "operators")
    await rule("ops-m3", "TST:m3:sp", 2, groups=("operators",))

    @sync_to_async
    def rename(a: str, b: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {a} RENAME TO {b}")

    async with Sock("/api/v1/pv-socket", operator) as sock:
        before = await sock.ask({"action": "subscribe", "pv": "TST:m3:sp"}, where=value_of("TST:m3:sp"))
        await rename("devices_auditentry", "devices_auditentry_away")  # the database refuses the record
        try:
            err = await sock.ask({"action": "set", "pv": "TST:m3:sp", "value": before["value"] + 1, "id": 1})
        finally:
            await rename("devices_auditentry_away", "devices_auditentry")
        assert err["code"] == "audit_unavailable" and "not done" in err["error"]
        again = await sock.ask({"action": "refresh", "id": 2}, where=value_of("TST:m3:sp"))
        assert again["value"] == before["value"]  # nothing was written


@sync_to_async
def make_token(username: str, *groups: str, expired: bool = False, revoked: bool = False) -> str:
    from datetime import timedelta

    from django.utils import timezone

    from devices.access.tokens import api_token_create, api_token_revoke

    user = User.objects.create_user(username, password="pw-123456")
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    token, key = api_token_create(user=user, label=f"{username}-script",
                                  expires_at=timezone.now() - timedelta(seconds=1) if expired else None)
    if revoked:
        api_token_revoke(token=token)
    return key


async def handshake(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    from ophydsite.asgi import application

    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    if connected:
        await comm.disconnect()
    return connected


async def test_api_token_writes_as_its_user_and_is_named_in_the_audit(ioc):
    from ophydsite.asgi import application

    key = await make_token("robot", "operators")
    await rule("ops-m1-tok", "TST:m1:sp", 2, groups=("operators",))
    comm = WebsocketCommunicator(application, "/api/v1/pv-socket",
                                 headers=[(b"authorization", f"Bearer {key}".encode())])
    assert (await comm.connect(timeout=5))[0]
    await comm.send_json_to({"action": "set", "pv": "TST:m1:sp", "value": 4.25, "timeout": 5, "id": 1})
    while True:
        msg = await comm.receive_json_from(timeout=10)
        if msg.get("id") == 1:
            break
    await comm.disconnect()
    assert msg["status"] == "done", msg
    [row] = await audit_rows()
    assert (row.username, row.token, row.outcome) == ("robot", "robot-script", "done")


async def test_bad_revoked_expired_and_url_tokens_are_refused_at_the_handshake(ioc):
    revoked = await make_token("r1", revoked=True)
    expired = await make_token("r2", expired=True)
    good = await make_token("r3")
    assert not await handshake("/api/v1/pv-socket", [(b"authorization", f"Bearer {revoked}".encode())])
    assert not await handshake("/api/v1/device-socket", [(b"authorization", f"Bearer {expired}".encode())])
    assert not await handshake("/monitor", [(b"authorization", b"Bearer oas_nonsense")])
    assert not await handshake(f"/api/v1/pv-socket?token={good}", [])
    assert await handshake("/api/v1/pv-socket", [(b"authorization", f"Bearer {good}".encode())])


async def test_scripts_without_origin_need_a_token_when_the_setting_says_so(ioc):
    key = await make_token("r4")
    settings.OAS = replace(settings.OAS, allow_no_origin=False)
    assert not await handshake("/api/v1/pv-socket", [])
    assert await handshake("/api/v1/pv-socket", [(b"authorization", f"Bearer {key}".encode())])


async def test_http_tokens_only_in_the_header(ioc, async_client):
    assert (await async_client.get("/api/v1/health", headers={"authorization": "Bearer oas_nope"})).status_code == 401
    response = await async_client.get("/api/v1/health?token=abc")
    assert response.status_code == 400 and "Authorization header" in response.json()["error"]
    key = await make_token("r5")
    assert (await async_client.get("/api/v1/health", headers={"authorization": f"Bearer {key}"})).status_code == 200


@sync_to_async
def login(name: str, *groups: str) -> tuple[HttpClient, str]:
    user = User.objects.create_user(name, password="pw-123456")
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    http = HttpClient()
    assert http.post("/accounts/login/", {"username": name, "password": "pw-123456"}).status_code == 302
    return http, f"sessionid={http.cookies['sessionid'].value}"


async def closed_with(sock: Sock, timeout: float = 5.0) -> int | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        event = await asyncio.wait_for(sock.comm.output_queue.get(), max(deadline - loop.time(), 0.01))
        if event["type"] == "websocket.close":
            return event.get("code")
    return None


async def test_logout_closes_that_users_sockets_only(ioc):
    http, cookie = await login("leaver")
    _, other = await login("stayer")
    async with Sock("/api/v1/pv-socket", cookie) as mine, Sock("/api/v1/device-socket", other) as theirs:
        await sync_to_async(http.post)("/accounts/logout/")
        assert await closed_with(mine) == 4401
        assert (await theirs.ask({"action": "refresh", "id": 1}))["action"] == "refresh"  # still open


async def test_deactivation_and_token_revocation_close_open_sockets(ioc):
    from devices.access.models import ApiToken
    from devices.access.tokens import api_token_revoke

    _, cookie = await login("leaving")
    key = await make_token("bot")
    async with Sock("/api/v1/pv-socket", cookie) as user_sock:
        await sync_to_async(User.objects.filter(username="leaving").update)(is_active=False)
        assert await closed_with(user_sock) == 4401
    from ophydsite.asgi import application

    comm = WebsocketCommunicator(application, "/monitor", headers=[(b"authorization", f"Bearer {key}".encode())])
    assert (await comm.connect(timeout=5))[0]
    token = await sync_to_async(ApiToken.objects.get)(label="bot-script")
    await sync_to_async(api_token_revoke)(token=token)
    event = await asyncio.wait_for(comm.output_queue.get(), 5)
    assert event == {"type": "websocket.close", "code": 4401}


async def test_a_removed_rule_downgrades_write_access_on_open_streams(ioc):
    _, cookie = await login("op5", "operators")
    await rule("ops-m1-live", "TST:m1:sp", 2, groups=("operators",))
    async with Sock("/api/v1/pv-socket", cookie) as sock:
        value = await sock.ask({"action": "subscribe", "pv": "TST:m1:sp"}, where=value_of("TST:m1:sp"))
        assert value["write_access"] is True
        await sync_to_async(AccessRule.objects.filter(name="ops-m1-live").delete)()
        down = await sock.ask({}, where=lambda m: value_of("TST:m1:sp")(m) and m["write_access"] is False)
        assert down["connected"] is True
        await rule("hide-m1", "TST:m1:sp", 0)
        gone = await sock.ask({}, where=lambda m: m.get("code") == "forbidden")
        assert gone["pv"] == "TST:m1:sp" and "any more" in gone["error"]


async def test_a_dragged_slider_is_coalesced_and_every_attempt_is_on_record(ioc):
    _, cookie = await login("slider", "operators")
    await rule("ops-slow", "TST:slow", 2, groups=("operators",))
    async with Sock("/api/v1/pv-socket", cookie) as sock:
        for i in range(12):  # TST:slow completes each put after 2 s
            await sock.comm.send_json_to({"action": "set", "pv": "TST:slow", "value": float(i), "id": i, "timeout": 10})
            if i == 0:  # the drag starts: its first set is in progress when the others come
                await asyncio.sleep(0.5)
        replies = {}
        while len(replies) < 12:
            msg = await sock.ask({}, where=lambda m: isinstance(m.get("id"), int), timeout=15)
            replies[msg["id"]] = msg
    assert replies[0]["status"] == "done" and replies[11]["status"] == "done"
    assert {replies[i]["code"] for i in range(1, 11)} == {"superseded"}
    rows = await audit_rows()
    assert len(rows) == 12 and sum(r.outcome == "done" for r in rows) == 2
    assert {r.message for r in rows if r.outcome == "refused"} == {
        "A newer set of the same target from the same user replaced this one"}


async def test_the_per_user_write_rate_is_capped(ioc):
    settings.OAS = replace(settings.OAS, write_rate_hz=2.0)  # bursts of 4
    _, cookie = await login("fast", "operators")
    await rule("ops-all-m", "TST:m*:sp", 2, groups=("operators",))
    async with Sock("/api/v1/pv-socket", cookie) as sock:
        codes = []
        for i in range(6):  # different targets: no coalescing, only the rate
            msg = await sock.ask({"action": "set", "pv": f"TST:m{1 + i % 3}:sp", "value": 1.0 + i, "id": i})
            codes.append(msg.get("status") if msg.get("status") == "done" else msg.get("code"))
    assert codes[:4] == ["done"] * 4 and "rate_limited" in codes[4:]


async def test_load_devices_needs_a_token_or_a_session_with_csrf_and_the_permission(ioc):
    from django.contrib.auth.models import Permission
    from django.test import AsyncClient

    from devices.access.tokens import api_token_create

    anonymous = await AsyncClient().post("/api/v1/load-devices")
    assert anonymous.status_code == 401 and "API token" in anonymous.json()["error"]

    @sync_to_async
    def staff(name: str, permitted: bool) -> tuple[User, str]:
        user = User.objects.create_user(name, password="pw-123456")
        if permitted:
            user.user_permissions.add(Permission.objects.get(codename="reload_devices"))
        return user, api_token_create(user=user, label=f"{name}-ci")[1]

    viewer, viewer_key = await staff("nopes", False)
    reloader, key = await staff("reloader", True)
    refused = await AsyncClient().post("/api/v1/load-devices", headers={"authorization": f"Bearer {viewer_key}"})
    assert refused.status_code == 403 and "devices.reload_devices" in refused.json()["error"]
    ok = await AsyncClient().post("/api/v1/load-devices", headers={"authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and ok.json()["status"] in {"ok", "partial"}
    browser = AsyncClient(enforce_csrf_checks=True)
    await browser.aforce_login(reloader)
    forged = await browser.post("/api/v1/load-devices")  # a cross-site form post: no CSRF token
    assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
    page = await browser.get("/accounts/login/")  # any page sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value if "csrftoken" in browser.cookies else page.context["csrf_token"]
    allowed = await browser.post("/api/v1/load-devices", headers={"x-csrftoken": csrf})
    assert allowed.status_code == 200


async def test_auth_required_refuses_anonymous_reads_on_every_socket(ioc):
    settings.OAS = replace(settings.OAS, auth_required=True)
    async with Sock("/api/v1/pv-socket") as sock:
        summary = await sock.ask({"action": "subscribe", "pv": "TST:counter", "id": 1})
        assert summary["subscribed"] == [] and "OAS_AUTH_REQUIRED" in summary["failed"][0]["error"]
    async with Sock("/monitor") as sock:
        err = await sock.ask({"action": "connect", "pv": "TST:counter"}, where=lambda m: m.get("msg_type") == "error")
        assert err["code"] == "forbidden"
    _, cookie = await login("reader")
    async with Sock("/api/v1/pv-socket", cookie) as sock:
        assert (await sock.ask({"action": "subscribe", "pv": "TST:counter", "id": 2}))["subscribed"] == ["TST:counter"]


async def test_losing_the_default_write_permission_downgrades_open_streams(ioc):
    from django.contrib.auth.models import Permission

    @sync_to_async
    def writer() -> tuple[User, str]:
        user = User.objects.create_user("trusted", password="pw-123456")
        user.user_permissions.add(Permission.objects.get(codename="write_default"))
        http = HttpClient()
        http.force_login(user)
        return user, f"sessionid={http.cookies['sessionid'].value}"

    user, cookie = await writer()
    async with Sock("/api/v1/pv-socket", cookie) as sock:
        value = await sock.ask({"action": "subscribe", "pv": "TST:m3:sp"}, where=value_of("TST:m3:sp"))
        assert value["write_access"] is True
        await sync_to_async(user.user_permissions.clear)()
        down = await sock.ask({}, where=lambda m: value_of("TST:m3:sp")(m) and m["write_access"] is False)
        assert down["pv"] == "TST:m3:sp"
        err = await sock.ask({"action": "set", "pv": "TST:m3:sp", "value": 1, "id": 9})
        assert err["code"] == "forbidden"


async def test_logout_closes_sockets_at_once_not_at_the_next_review(ioc):
    settings.OAS = replace(settings.OAS, access_review_s=60.0)
    http, cookie = await login("quick")
    async with Sock("/api/v1/device-socket", cookie) as sock:
        await asyncio.sleep(0.2)  # the socket's review loop is waiting (for 60 s)
        await sync_to_async(http.post)("/accounts/logout/")
        assert await closed_with(sock, timeout=2.0) == 4401
