"""Running queue actions without services: rights (target qserver), checks, audit records,
and the Queue Server's answers, with a scripted client in place of bluesky-httpserver."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devices.access.guard import Guard, MemoryAudit, StaticRules
from devices.access.rules import Level, Policy, Principal, Rule, decide
from qsconsole.actions import ACTIONS
from qsconsole.qs_http import QsReply
from qsconsole.services import qserver_action_run

ALLOWED = {"count": {"name": "count", "parameters": [
    {"name": "detectors", "kind": {"value": 1}}, {"name": "num", "kind": {"value": 1}, "default": "1"}]}}
OP = Principal("op", frozenset({"operators"}))
QUEUE_EDIT = Rule("ops-queue", "queue:*", Level.WRITE, target="qserver", groups=frozenset({"operators"}))


class Scripted:
    """Answers calls from a table of path -> QsReply; records what was sent."""

    def __init__(self, **answers: QsReply) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, Any]] = []

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> QsReply:
        self.sent.append((method, path, body))
        return self.answers.get(path.removeprefix("/api/").replace("/", "_"),
                                QsReply("ok", {"success": True, "msg": ""}, None, 200))


def guard(principal: Principal = OP, *rules: Rule, audit: Any = None) -> Guard:
    return Guard(principal=principal, policy=Policy(), rules=StaticRules(rules), audit=audit or MemoryAudit(),
                 address="10.0.0.5", path="rest")


def allowed_plans() -> QsReply:
    return QsReply("ok", {"success": True, "msg": "", "plans_allowed": ALLOWED}, None, 200)


def test_rights_qserver_rules_only_and_defaults():
    def level(rules, who, name="run:pause"):
        return decide(rules, principal=who, name=name, kind="qserver", address=None, policy=Policy()).level

    everybody_writes_pvs = Rule("all", "*", Level.WRITE)  # target "any": PVs and devices only
    assert level([everybody_writes_pvs], OP) == Level.NONE
    assert level([], Principal()) == Level.NONE
    assert level([], Principal("boss", default_write=True)) == Level.WRITE  # as for PVs: the permission
    assert level([QUEUE_EDIT], OP, "queue:add") == Level.WRITE and level([QUEUE_EDIT], OP, "run:pause") == Level.NONE
    # a qserver rule does not cover PVs named like actions
    assert decide([QUEUE_EDIT], principal=OP, name="queue:add", kind="pv", address=None,
                  policy=Policy()).rule is None
    open_rule = Rule("anyone-runs", "run:*", Level.WRITE, target="qserver")
    assert level([open_rule], Principal()) == Level.READ  # anonymous writes stay capped
    assert decide([open_rule], principal=Principal(), name="run:stop", kind="qserver", address=None,
                  policy=Policy(anonymous_writes=True)).level == Level.WRITE


async def test_an_allowed_add_is_checked_recorded_sent_and_completed():
    audit = MemoryAudit()
    added = QsReply("ok", {"success": True, "msg": "", "qsize": 1,
                           "item": {"name": "count", "item_uid": "u-1"}}, None, 200)
    client = Scripted(plans_allowed=allowed_plans(), queue_item_add=added)
    out = await qserver_action_run(guard=guard(OP, QUEUE_EDIT, audit=audit), client=client, action="queue:add",
                                   params={"name": "count", "kwargs": {"detectors": ["det"]}})
    assert out.ok and out.item_uid == "u-1" and out.answer["qsize"] == 1
    assert [s[1] for s in client.sent] == ["/api/plans/allowed", "/api/queue/item/add"]
    assert client.sent[1][2]["item"]["meta"] == {"ophydsite_user": "op"}
    [row] = audit.records
    assert (row["target"], row["outcome"], row["rule"], row["username"], row["path"], row["client"]) == (
        "qserver:queue:add", "done", "ops-queue", "op", "rest", "10.0.0.5")
    assert json.loads(row["value_requested"]) == {"name": "count", "kwargs": {"detectors": ["det"]}}
    assert json.loads(row["readback_after"])["item_uid"] == "u-1" and row["duration_s"] >= 0


@pytest.mark.parametrize(("who", "action", "params", "status", "outcome", "words"), [
    (Principal(), "run:pause", {}, "unauthenticated", "refused", "acting needs an access rule"),
    (OP, "run:pause", {}, "forbidden", "refused", "op may not run:pause"),
    (OP, "queue:explode", {}, "unknown_action", "bad_value", "No queue action 'queue:explode'"),
    (OP, "queue:remove", {}, "bad_params", "bad_value", "exactly one of uid, pos"),
    (OP, "queue:add", {"name": "scan"}, "plan_not_allowed", "bad_value", "not among the Queue Server's allowed"),
    (OP, "queue:add", {"name": "count", "kwargs": {"nmu": 2}}, "bad_params", "bad_value", "no parameter 'nmu'"),
])
async def test_refusals_send_nothing_and_are_recorded(who, action, params, status, outcome, words):
    audit = MemoryAudit()
    client = Scripted(plans_allowed=allowed_plans())
    out = await qserver_action_run(guard=guard(who, QUEUE_EDIT, audit=audit), client=client, action=action,
                                   params=params)
    assert (out.status, out.ok) == (status, False) and words in out.message, out
    assert all(path == "/api/plans/allowed" for _, path, _ in client.sent)  # nothing acted
    [row] = audit.records
    assert (row["target"], row["outcome"]) == (f"qserver:{action}", outcome) and words in row["message"]


@pytest.mark.parametrize(("reply", "status", "outcome"), [
    (QsReply("refused", {"success": False, "msg": "Plan with UID 'x' is not in the queue."}, "Plan with UID 'x' "
             "is not in the queue.", 200), "qserver_refused", "qserver_refused"),
    (QsReply("timeout", None, "the Queue Server at http://h:1 did not answer within 1 s"), "qserver_timeout",
     "timeout"),
    (QsReply("unreachable", None, "the Queue Server at http://h:1 cannot be reached (ConnectionError)"),
     "qserver_unavailable", "not_connected"),
    (QsReply("error", None, "the Queue Server at http://h:1 answered HTTP 401", 401), "qserver_error", "other"),
])
async def test_the_queue_servers_no_and_its_absence_complete_the_pending_record(reply, status, outcome):
    audit = MemoryAudit()
    client = Scripted(queue_item_remove=reply)
    out = await qserver_action_run(guard=guard(OP, QUEUE_EDIT, audit=audit), client=client,
                                   action="queue:remove", params={"uid": "x"})
    assert out.status == status and reply.error in out.message
    [row] = audit.records
    assert row["outcome"] == outcome and reply.error in row["message"]


async def test_allowed_plans_unreadable_refuses_the_add_on_record():
    audit = MemoryAudit()
    down = QsReply("unreachable", None, "the Queue Server at http://h:1 cannot be reached (ConnectionError)")
    client = Scripted(plans_allowed=down)
    out = await qserver_action_run(guard=guard(OP, QUEUE_EDIT, audit=audit), client=client, action="queue:add",
                                   params={"name": "count", "kwargs": {"detectors": ["det"]}})
    assert out.status == "qserver_unavailable" and "allowed plans could not be read" in out.message
    assert [r["outcome"] for r in audit.records] == ["not_connected"] and len(client.sent) == 1


async def test_no_audit_record_no_action():
    class Broken(MemoryAudit):
        async def begin(self, record: dict[str, Any]) -> int:
            raise OSError("disk full")

    client = Scripted()
    out = await qserver_action_run(guard=guard(OP, Rule("r", "*", Level.WRITE, target="qserver"), audit=Broken()),
                                   client=client, action="run:start", params={})
    assert out.status == "audit_unavailable" and client.sent == []


def test_rest_schemas_take_the_catalogues_parameters():
    from devices.rest import qserver_api as rest

    for model, action in ((rest.QueueAddIn, "queue:add"), (rest.QueueMoveIn, "queue:move"),
                          (rest.QueueRemoveIn, "queue:remove"), (rest.PauseIn, "run:pause")):
        assert set(model.model_fields) == set(ACTIONS[action].params), action
