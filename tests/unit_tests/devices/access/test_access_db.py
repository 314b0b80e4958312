"""The database rule source fails safe: no rules readable means read-only for everybody."""

from devices.access.db import DbRules
from devices.access.rules import Level, Policy, Principal, decide


async def test_unreadable_rules_mean_read_only(django_db_blocker):
    with django_db_blocker.block():  # the database refuses every query, as one that is down
        rules = await DbRules().rules()
    writer = Principal("ops", default_write=True)
    decision = decide(rules, principal=writer, name="SR:x", kind="pv", address=None, policy=Policy())
    assert decision.level == Level.READ and decision.rule == "access-rules-unavailable"
