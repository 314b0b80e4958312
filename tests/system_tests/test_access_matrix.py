"""Every socket path × every kind of client: the outcome of a set and its audit row.

Clients: anonymous, a user no rule covers, a user with a read rule, a user with a write
rule, a token of a user with a write rule, a revoked token, an expired token. The default
policy (no anonymous writes) and a rule for the "readers" and "writers" groups.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import Client as HttpClient
from django.utils import timezone

from devices.access import db as access_db
from devices.access.models import AccessRule, AuditEntry
from devices.access.tokens import api_token_create, api_token_revoke
from devices.services.runtime import get_hub

pytestmark = [pytest.mark.system, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]
FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"

# client kind -> (expected set outcome, expected audit outcome); None: the handshake is refused
EXPECTED = {
    "anonymous": ("forbidden", "refused"),
    "no_rule": ("forbidden", "refused"),
    "read_rule": ("forbidden", "refused"),
    "write_rule": ("done", "done"),
    "token": ("done", "done"),
    "revoked_token": None,
    "expired_token": None,
}
PATHS = {  # path -> (set message, audit target, kind of name)
    "/api/v1/pv-socket": ({"action": "set", "pv": "TST:m2:sp", "value": 1.5, "timeout": 5}, "TST:m2:sp"),
    "/api/v1/device-socket": ({"action": "set", "device": "m1_sp", "value": 1.5, "timeout": 5}, "m1_sp"),
}


@pytest.fixture
async def world(ioc, tmp_path, monkeypatch):
    monkeypatch.setattr(access_db, "RULE_CACHE_S", 0.0)
    access_db.DB_RULES._cached = None
    folder = tmp_path / "startup"
    folder.mkdir()
    shutil.copy(FILES / "00_signals.py", folder / "00_signals.py")
    original = settings.OAS
    settings.OAS = replace(original, anonymous_writes=False, startup_dir=str(folder), write_rate_hz=0.0)
    assert (await (await get_hub()).reload_devices(60.0))["status"] == "ok"

    @sync_to_async
    def build() -> dict[str, list[tuple[bytes, bytes]]]:
        readers, writers = Group.objects.create(name="readers"), Group.objects.create(name="writers")
        for level, group in ((1, readers), (2, writers)):
            rule = AccessRule.objects.create(name=f"{group.name}-rule", pattern="*m[0-9]?sp", level=level)
            rule.groups.add(group)

        def user(name: str, group: Group | None) -> User:
            u = User.objects.create_user(name, password="pw-123456")
            if group is not None:
                u.groups.add(group)
            return u

        def cookie(u: User) -> list[tuple[bytes, bytes]]:
            http = HttpClient()
            http.force_login(u)
            return [(b"cookie", f"sessionid={http.cookies['sessionid'].value}".encode())]

        def bearer(key: str) -> list[tuple[bytes, bytes]]:
            return [(b"authorization", f"Bearer {key}".encode())]

        bot = user("bot", writers)
        _, key = api_token_create(user=bot, label="bot-token")
        revoked, revoked_key = api_token_create(user=bot, label="revoked")
        api_token_revoke(token=revoked)
        _, expired_key = api_token_create(user=bot, label="expired", expires_at=timezone.now() - timedelta(1))
        return {"anonymous": [], "no_rule": cookie(user("plain", None)), "read_rule": cookie(user("r", readers)),
                "write_rule": cookie(user("w", writers)), "token": bearer(key),
                "revoked_token": bearer(revoked_key), "expired_token": bearer(expired_key)}

    yield await build()
    settings.OAS = original


async def attempt(path: str, headers: list[tuple[bytes, bytes]], message: dict) -> dict | None:
    from ophydsite.asgi import application

    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=10)
    if not connected:
        return None
    try:
        await comm.send_to(text_data=json.dumps({**message, "id": "x"}))
        while True:
            reply = await comm.receive_json_from(timeout=15)
            if reply.get("id") == "x":
                return reply
    finally:
        await comm.disconnect()


@pytest.mark.parametrize("path", list(PATHS))
async def test_every_client_kind_on_every_socket(world, path):
    message, target = PATHS[path]
    for kind, headers in world.items():
        before = await sync_to_async(AuditEntry.objects.count)()
        reply = await attempt(path, headers, message)
        expected = EXPECTED[kind]
        rows = await sync_to_async(list)(AuditEntry.objects.order_by("at")[before:])
        if expected is None:
            assert reply is None, (kind, reply)  # refused at the handshake: no set was attempted
            assert rows == [], kind
            continue
        got = reply.get("status") if reply.get("status") == "done" else reply.get("code")
        assert got == expected[0], (kind, reply)
        [row] = rows
        assert (row.outcome, row.path, row.target) == (expected[1], path.rsplit("/", 1)[-1], target), kind
        assert row.username == {"anonymous": "", "no_rule": "plain", "read_rule": "r", "write_rule": "w",
                                "token": "bot"}[kind], kind
        assert row.token == ("bot-token" if kind == "token" else ""), kind
        assert row.rule == {"anonymous": "", "no_rule": "", "read_rule": "readers-rule",
                            "write_rule": "writers-rule", "token": "writers-rule"}[kind], (kind, row.rule)


async def test_monitor_reads_follow_the_same_rules(world):
    from ophydsite.asgi import application

    await sync_to_async(AccessRule.objects.create)(name="hide-counter", pattern="TST:counter", level=0)
    for kind, headers in world.items():
        comm = WebsocketCommunicator(application, "/monitor", headers=headers)
        connected, _ = await comm.connect(timeout=10)
        assert connected is (EXPECTED[kind] is not None), kind
        if not connected:
            continue
        await comm.send_json_to({"action": "connect", "pv": "TST:counter"})
        reply = await comm.receive_json_from(timeout=10)
        assert reply["msg_type"] == "error" and reply["code"] == "forbidden", (kind, reply)
        await comm.disconnect()


# REST: client kind -> (HTTP status of the set, audit outcome or None when no row is written)
REST_EXPECTED = {
    "anonymous": (401, "refused"),
    "no_rule": (403, "refused"),
    "read_rule": (403, "refused"),
    "write_rule": (200, "done"),
    "token": (200, "done"),
    "revoked_token": (401, None),  # refused by the token check, before any set is attempted
    "expired_token": (401, None),
}
CSRF = "a" * 32  # a CSRF secret the browser's cookie and header both carry


def rest_client(headers: list[tuple[bytes, bytes]], csrf: bool = True) -> tuple[Any, dict[str, str]]:
    """An HTTP client carrying what the socket client carried: the session cookie (with the
    CSRF token a browser page would hold) or the Authorization header."""
    from django.test import AsyncClient

    client, sent = AsyncClient(enforce_csrf_checks=True), {}  # as a browser: CSRF is checked
    for key, value in headers:
        if key == b"cookie":
            name, _, session = value.decode().partition("=")
            client.cookies[name] = session
            if csrf:
                client.cookies["csrftoken"] = CSRF
                sent["x-csrftoken"] = CSRF
        else:
            sent[key.decode()] = value.decode()
    return client, sent


async def test_every_client_kind_on_rest(world):
    for kind, headers in world.items():
        before = await sync_to_async(AuditEntry.objects.count)()
        client, sent = rest_client(headers)
        reply = await client.put("/api/v1/pvs", {"pv": "TST:m2:sp", "set_value": 1.5, "timeout": 5},
                                 content_type="application/json", headers=sent)
        status, outcome = REST_EXPECTED[kind]
        assert reply.status_code == status, (kind, reply.json())
        assert "error" in reply.json() or reply.json()["success"] is True, kind
        rows = await sync_to_async(list)(AuditEntry.objects.order_by("at")[before:])
        if outcome is None:
            assert rows == [], kind
            continue
        [row] = rows
        assert (row.outcome, row.path, row.target) == (outcome, "rest", "TST:m2:sp"), kind
        assert row.username == {"anonymous": "", "no_rule": "plain", "read_rule": "r", "write_rule": "w",
                                "token": "bot"}[kind], kind
        assert row.token == ("bot-token" if kind == "token" else ""), kind
        assert row.rule == {"anonymous": "", "no_rule": "", "read_rule": "readers-rule",
                            "write_rule": "writers-rule", "token": "writers-rule"}[kind], (kind, row.rule)


async def test_rest_reads_follow_the_same_rules(world):

    await sync_to_async(AccessRule.objects.create)(name="hide-counter", pattern="TST:counter", level=0)
    for kind, headers in world.items():
        client, sent = rest_client(headers)
        readable = await client.get("/api/v1/pvs/TST:m2:sp", headers=sent)
        hidden = await client.get("/api/v1/pvs/TST:counter", headers=sent)
        if kind in ("revoked_token", "expired_token"):
            assert (readable.status_code, hidden.status_code) == (401, 401), kind
            continue
        assert readable.status_code == 200 and "TST:m2:sp" in readable.json(), kind
        assert hidden.status_code == (401 if kind == "anonymous" else 403), kind
        assert "No read access to TST:counter" in hidden.json()["error"], kind
        device = await client.get("/api/v1/devices/m1_sp", headers=sent)
        assert device.status_code == 200 and device.json()["connected"] is True, kind


async def test_a_browser_session_write_without_the_csrf_token_is_refused(world):
    client, sent = rest_client(world["write_rule"], csrf=False)
    forged = await client.put("/api/v1/pvs", {"pv": "TST:m2:sp", "set_value": 2.5},
                              content_type="application/json", headers=sent)
    assert forged.status_code == 403 and forged.json()["code"] == "csrf", forged.json()
    [row] = await sync_to_async(list)(AuditEntry.objects.all())  # a forged write is on record
    assert (row.outcome, row.username, row.path, row.target) == ("refused", "w", "rest", "TST:m2:sp")
    assert "CSRF" in row.message
