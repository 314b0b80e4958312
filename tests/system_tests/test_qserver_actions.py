"""Queue actions through the REST API against a real RE Manager and bluesky-httpserver.

Operators with a ``qserver`` rule add, move and remove plan items, run the queue, pause,
resume, stop, abort and halt a plan, open and close the environment; a user without the rule
and anonymous clients are refused; bad input and a Queue Server that is gone get clear
answers; every attempt has its audit row. Each test leaves the Queue Server idle with an
empty queue and its environment open, as other modules expect.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.test import AsyncClient

from devices.access import db as access_db
from devices.access.models import AccessRule, AuditEntry
from tests.support.ioc import free_port
from tests.support.qserver import API_KEY

pytestmark = [pytest.mark.system, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]
COUNT = {"name": "count", "kwargs": {"detectors": ["det"], "num": 1}}


def long_sleep(duration: float = 20.0) -> dict[str, Any]:
    return {"name": "sleep_plan", "kwargs": {"duration": duration, "steps": int(duration * 4)}}


@sync_to_async
def people() -> dict[str, str]:
    """Users with API tokens: op (every action), editor (queue editing only), viewer (no rule)."""
    from devices.access.tokens import api_token_create

    keys = {}
    for name, group in (("op", "operators"), ("editor", "editors"), ("viewer", None)):
        user = User.objects.create_user(name, password="pw-123456")
        if group:
            user.groups.add(Group.objects.get_or_create(name=group)[0])
        keys[name] = api_token_create(user=user, label=f"{name}-script")[1]
    for rule, pattern, group in (("ops-qserver", "*", "operators"), ("editors-queue", "queue:*", "editors")):
        row = AccessRule.objects.create(name=rule, pattern=pattern, level=2, target="qserver")
        row.groups.add(Group.objects.get(name=group))
    return keys


@sync_to_async
def audit() -> list[tuple[str, str, str]]:
    """(user, target, outcome) of the Queue Server audit rows, oldest first."""
    return [(r.username, r.target, r.outcome)
            for r in AuditEntry.objects.filter(target__startswith="qserver:").order_by("at", "pk")]


@sync_to_async
def last_row() -> AuditEntry:
    return AuditEntry.objects.filter(target__startswith="qserver:").order_by("-at", "-pk").first()


class Rest:
    """One user's REST client of the in-process server."""

    def __init__(self, key: str | None) -> None:
        self.client = AsyncClient()
        self.headers = {"authorization": f"Bearer {key}"} if key else {}

    async def get(self, path: str) -> Any:
        return await self.client.get(f"/api/v1/qserver/{path}", headers=self.headers)

    async def act(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(f"/api/v1/qserver/{path}", json.dumps(body) if body is not None else None,
                                          content_type="application/json", headers=self.headers)
        return response.status_code, response.json()

    async def ok(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, reply = await self.act(path, body)
        assert status == 200 and reply["ok"], (path, status, reply)
        return reply

    async def queue(self) -> dict[str, Any]:
        response = await self.get("queue")
        assert response.status_code == 200, response.json()
        return response.json()


async def until(qs, predicate, what: str, timeout: float = 20.0) -> dict[str, Any]:
    return await asyncio.to_thread(qs.wait_for, predicate, timeout, what)


def idle(s: dict[str, Any]) -> bool:
    return s.get("manager_state") == "idle" and s.get("re_state") in ("idle", None)


@pytest.fixture
async def qs(queue_server, monkeypatch):
    """The session's Queue Server behind our settings, its environment open; afterwards idle,
    its queue empty, its environment open again."""
    monkeypatch.setattr(access_db, "RULE_CACHE_S", 0.0)
    access_db.DB_RULES._cached = None
    original = settings.OAS
    settings.OAS = replace(original, qserver_http_host="127.0.0.1", qserver_http_port=queue_server.http_port,
                           qserver_api_key=API_KEY, anonymous_writes=False)
    await asyncio.to_thread(queue_server.open_environment)
    yield queue_server
    settings.OAS = original
    status = await asyncio.to_thread(queue_server.status)
    if status.get("manager_state") == "paused":
        await asyncio.to_thread(queue_server.call, "POST", "/re/abort")
    elif status.get("manager_state") == "executing_queue":
        await asyncio.to_thread(queue_server.call, "POST", "/queue/stop")
    await until(queue_server, idle, "the Queue Server to be idle", 40)
    await asyncio.to_thread(queue_server.call, "POST", "/queue/clear")
    await asyncio.to_thread(queue_server.open_environment)


async def test_add_move_remove_clear_and_the_queue_read(qs):
    op = Rest((await people())["op"])
    first = await op.ok("queue/add", COUNT)
    assert first["action"] == "queue:add" and first["item_uid"] == first["answer"]["item"]["item_uid"]
    second = await op.ok("queue/add", {**long_sleep(), "pos": "back"})
    queue = await op.queue()
    assert [i["item_uid"] for i in queue["items"]] == [first["item_uid"], second["item_uid"]]
    assert queue["items"][0]["meta"] == {"ophydsite_user": "op"} and queue["running_item"] is None

    await op.ok("queue/move", {"uid": second["item_uid"], "pos_dest": "front"})
    assert [i["name"] for i in (await op.queue())["items"]] == ["sleep_plan", "count"]
    await op.ok("queue/remove", {"uid": second["item_uid"]})
    status, gone = await op.act("queue/remove", {"uid": second["item_uid"]})
    assert status == 409 and gone["code"] == "qserver_refused" and "is not in the queue" in gone["error"], gone
    status, moved = await op.act("queue/move", {"uid": second["item_uid"], "before_uid": first["item_uid"]})
    assert status == 409 and "not found" in moved["error"] and moved["answer"]["success"] is False
    await op.ok("queue/clear")
    assert (await op.queue())["items"] == []

    assert await audit() == [("op", f"qserver:{a}", o) for a, o in (
        ("queue:add", "done"), ("queue:add", "done"), ("queue:move", "done"), ("queue:remove", "done"),
        ("queue:remove", "qserver_refused"), ("queue:move", "qserver_refused"), ("queue:clear", "done"))]
    row = await last_row()
    assert row.path == "rest" and row.client and row.duration_s is not None and row.token == "op-script"


async def test_bad_input_is_answered_and_nothing_half_done(qs):
    op = Rest((await people())["op"])
    cases = [
        ({"name": "not_a_plan"}, 400, "plan_not_allowed", "is not among the Queue Server's allowed plans"),
        ({"name": "count", "kwargs": {"detectors": ["det"], "nmu": 2}}, 400, "bad_params", "no parameter 'nmu'"),
        ({"name": "count", "kwargs": {}}, 400, "bad_params", "needs the parameter detectors"),
        # passes our checks; the Queue Server's own validation answers
        ({"name": "count", "kwargs": {"detectors": ["det"], "num": "x"}}, 409, "qserver_refused",
         "valid integer"),
        ({"name": "count", "kwargs": {"detectors": ["det"]}, "pos": 0, "after_uid": "x"}, 400, "bad_params",
         "at most one of pos, before_uid, after_uid"),
    ]
    for body, code, word, text in cases:
        status, reply = await op.act("queue/add", body)
        assert (status, reply["code"]) == (code, word) and text in reply["error"], (body, status, reply)
    status, reply = await op.act("queue/remove", {})
    assert status == 400 and "exactly one of uid, pos" in reply["error"]
    status, reply = await op.act("queue/add", {**COUNT, "color": "red"})  # schema: extra fields forbidden
    assert status == 422 and reply["code"] == "bad_request" and "color" in reply["error"]
    status, reply = await op.act("re/pause", {"option": "later"})
    assert status == 422
    status, reply = await op.act("re/resume")  # nothing paused: the Queue Server says so
    assert status == 409 and "not paused" in reply["error"]
    assert (await op.queue())["items"] == []
    assert [o for _, _, o in await audit()] == ["bad_value"] * 3 + ["qserver_refused", "bad_value", "bad_value",
                                                                     "qserver_refused"]
    row = await last_row()
    assert row.target == "qserver:run:resume" and "not paused" in row.message


async def test_a_plan_runs_into_the_history_and_another_is_paused_resumed_and_ended(qs):
    op = Rest((await people())["op"])
    await op.ok("queue/add", COUNT)
    await op.ok("queue/start")
    await until(qs, lambda s: idle(s) and s.get("items_in_queue") == 0, "count to run")
    history = (await op.queue())["history"]
    assert history[-1]["name"] == "count" and history[-1]["result"]["exit_status"] == "completed"

    for end, exit_status in (("re/abort", "aborted"), ("re/stop", "stopped"), ("re/halt", "halted")):
        await op.ok("queue/add", long_sleep())
        await op.ok("queue/start")
        await until(qs, lambda s: s.get("re_state") == "running", "the plan to run")
        if end == "re/abort":  # once: both pauses, a resume, a queue stop and its withdrawal
            await op.ok("re/pause", {"option": "immediate"})
            await until(qs, lambda s: s.get("manager_state") == "paused", "an immediate pause")
            await op.ok("re/resume")
            await until(qs, lambda s: s.get("re_state") == "running", "the plan to resume")
            await op.ok("queue/stop")
            assert (await asyncio.to_thread(qs.status))["queue_stop_pending"] is True
            await op.ok("queue/stop/cancel")
            await op.ok("re/pause")  # deferred: at the next checkpoint
        else:
            await op.ok("re/pause", {"option": "immediate"})
        await until(qs, lambda s: s.get("manager_state") == "paused", "the plan to pause")
        await op.ok(end)
        await until(qs, idle, f"{end} to end the plan")
        snapshot = await op.queue()
        assert snapshot["history"][-1]["result"]["exit_status"] == exit_status, snapshot["history"][-1]
        if snapshot["items"]:  # a plan that did not complete goes back to the queue
            await op.ok("queue/clear")
    actions = [t.removeprefix("qserver:") for _, t, o in await audit() if o == "done"]
    assert actions[:2] == ["queue:add", "run:start"] and actions.count("run:pause") == 4
    assert {"run:resume", "run:stop_queue", "run:cancel_stop_queue", "run:abort", "run:stop",
            "run:halt"} <= set(actions)
    assert {o for _, _, o in await audit()} == {"done"}


async def test_the_environment_closes_and_opens(qs):
    op = Rest((await people())["op"])
    status, reply = await op.act("environment/open")
    assert status == 409 and "already exists" in reply["error"]
    await op.ok("environment/close")
    await until(qs, lambda s: s.get("worker_environment_exists") is False and idle(s), "the environment to close")
    await op.ok("environment/open")
    await until(qs, lambda s: s.get("worker_environment_exists") and s.get("re_state") == "idle",
                "the environment to open", 60)
    assert [(t, o) for _, t, o in await audit()] == [
        ("qserver:environment:open", "qserver_refused"), ("qserver:environment:close", "done"),
        ("qserver:environment:open", "done")]


async def test_users_without_the_rule_and_anonymous_clients_are_refused(qs):
    keys = await people()
    viewer, editor, anonymous = Rest(keys["viewer"]), Rest(keys["editor"]), Rest(None)
    status, reply = await viewer.act("queue/add", COUNT)
    assert status == 403 and reply["code"] == "forbidden" and "viewer" in reply["error"] and "qserver" in reply["error"]
    status, reply = await anonymous.act("queue/start")
    assert status == 401 and reply["code"] == "unauthenticated"
    status, reply = await viewer.act("environment/close")
    assert status == 403
    added = await editor.ok("queue/add", COUNT)  # queue editing, yes
    status, reply = await editor.act("queue/start")  # run control, no
    assert status == 403 and "editor (token editor-script) may not run:start" in reply["error"]
    await editor.ok("queue/remove", {"uid": added["item_uid"]})
    assert (await viewer.queue())["items"] == []  # reading needs no rule
    status = await asyncio.to_thread(qs.status)
    assert status["worker_environment_exists"] and idle(status)
    assert await audit() == [
        ("viewer", "qserver:queue:add", "refused"), ("", "qserver:run:start", "refused"),
        ("viewer", "qserver:environment:close", "refused"), ("editor", "qserver:queue:add", "done"),
        ("editor", "qserver:run:start", "refused"), ("editor", "qserver:queue:remove", "done")]
    row = await last_row()
    assert row.rule == "editors-queue"


async def test_a_queue_server_that_is_gone_or_refuses_our_key(qs):
    op = Rest((await people())["op"])
    settings.OAS = replace(settings.OAS, qserver_http_port=free_port())
    status, reply = await op.act("queue/start")
    assert status == 503 and reply["code"] == "qserver_unavailable" and "cannot be reached" in reply["error"]
    status, reply = await op.act("queue/add", COUNT)
    assert status == 503 and "allowed plans could not be read" in reply["error"]
    response = await op.get("queue")
    assert response.status_code == 503 and response.json()["code"] == "qserver_unavailable"

    settings.OAS = replace(settings.OAS, qserver_http_port=qs.http_port, qserver_api_key="wrong")
    status, reply = await op.act("re/pause")
    assert status == 502 and "HTTP 401" in reply["error"] and "SINGLE_USER_API_KEY" in reply["error"]
    response = await op.get("plans/allowed")
    assert response.status_code == 502

    settings.OAS = replace(settings.OAS, qserver_api_key=API_KEY)
    plans = (await op.get("plans/allowed")).json()["plans_allowed"]
    assert {"count", "sleep_plan"} <= set(plans)
    assert [(t, o) for _, t, o in await audit()] == [
        ("qserver:run:start", "not_connected"), ("qserver:queue:add", "not_connected"),
        ("qserver:run:pause", "other")]
    row = await last_row()
    assert "HTTP 401" in row.message and json.loads(row.value_requested) == {}
