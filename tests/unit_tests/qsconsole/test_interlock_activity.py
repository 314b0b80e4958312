"""Which Queue Server states forbid manual writes (states as RE Manager 0.0.25 reports them)."""

from __future__ import annotations

import pytest

from qsconsole.interlock import plan_activity

IDLE = {"manager_state": "idle", "re_state": "idle", "running_item_uid": None}


@pytest.mark.parametrize("status", [
    IDLE,
    {"manager_state": "idle", "re_state": None, "running_item_uid": None},  # no worker environment
    {"manager_state": "executing_task", "re_state": "idle", "running_item_uid": None},  # a function, not a plan
    {"manager_state": "creating_environment", "re_state": None, "running_item_uid": None},
])
def test_no_plan_in_progress_allows_writes(status):
    assert plan_activity(status) is None


@pytest.mark.parametrize(("status", "word"), [
    ({"manager_state": "executing_queue", "re_state": "running", "running_item_uid": "26bb"}, "running"),
    ({"manager_state": "starting_queue", "re_state": "idle", "running_item_uid": None}, "running"),
    # re_state leads manager_state by ~0.4 s when pausing: either is enough
    ({"manager_state": "executing_queue", "re_state": "paused", "running_item_uid": "0544"}, "paused"),
    ({"manager_state": "paused", "re_state": "paused", "running_item_uid": "0544"}, "paused"),
    ({"manager_state": "idle", "re_state": "stopping", "running_item_uid": None}, "running"),
    ({"manager_state": "idle", "re_state": "idle", "running_item_uid": "stale"}, "running"),
])
def test_a_plan_running_or_paused_refuses(status, word):
    reason = plan_activity(status)
    assert reason is not None and f"a plan is {word}" in reason
