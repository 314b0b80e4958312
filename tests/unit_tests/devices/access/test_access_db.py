"""The database side of access: the rule source fails safe (no rules readable means read-only
for everybody), and audit rows are written on a thread of their own."""

import pytest

from devices.access.db import DbRules
from devices.access.rules import Level, Policy, Principal, decide


async def test_unreadable_rules_mean_read_only(django_db_blocker):
    with django_db_blocker.block():  # the database refuses every query, as one that is down
        rules = await DbRules().rules()
    writer = Principal("ops", default_write=True)
    decision = decide(rules, principal=writer, name="SR:x", kind="pv", address=None, policy=Policy())
    assert decision.level == Level.READ and decision.rule == "access-rules-unavailable"


async def test_many_decisions_at_once_read_the_rules_once(monkeypatch):
    """A subscribe of many PVs decides them together: one read of the rules, not one each."""
    import asyncio
    import time

    from asgiref.sync import sync_to_async

    from devices.access import db

    calls = []

    def slow_read():  # the query, as slow as a busy database
        calls.append(1)
        time.sleep(0.05)
        return (db.Rule("everything", "*", Level.READ),)

    monkeypatch.setattr(db, "access_rules_load", slow_read)
    monkeypatch.setattr(db, "database_sync_to_async", sync_to_async)  # no Django connection needed
    rules = DbRules()
    results = await asyncio.gather(*(rules.rules() for _ in range(200)))
    assert len(calls) == 1
    assert all(r == results[0] and r[0].name == "everything" for r in results)
    await rules.rules()  # within the cache period: no read
    assert len(calls) == 1


@pytest.mark.django_db(transaction=True)
async def test_audit_rows_do_not_queue_behind_channels_thread_for_sync_code():
    """Every socket's sync work (connection checks per message, rules, tokens) shares one
    thread; the audit writes on its own, so a set's record waits for none of it."""
    import asyncio
    import threading

    from asgiref.sync import sync_to_async

    from devices.access.db import DbAudit
    from devices.access.models import AuditEntry

    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait)())  # holds that one thread
    try:
        audit = DbAudit()
        key = await asyncio.wait_for(audit.begin({"path": "pv-socket", "target": "SR:x", "value_requested": "1"}), 20)
        await asyncio.wait_for(audit.finish(key, {"outcome": "done", "readback_after": "1"}), 20)
    finally:
        release.set()
        await busy
    row = await sync_to_async(AuditEntry.objects.get)(pk=key)
    assert (row.target, row.outcome, row.readback_after) == ("SR:x", "done", "1")
