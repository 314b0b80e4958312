"""The queue action catalogue: parameter checks, plan checks against the allowed plans, payloads."""

from __future__ import annotations

import pytest

from qsconsole.actions import ACTIONS, MAX_PARAMS_BYTES, action_catalogue, params_problem, payload_of, plan_problem

# As RE Manager 0.0.25 describes bluesky's count and the tests' sleep_plan (kind values of
# inspect.Parameter: 1 positional-or-keyword, 2 *args, 3 keyword-only, 4 **kwargs).
ALLOWED = {
    "count": {"name": "count", "parameters": [
        {"name": "detectors", "kind": {"name": "POSITIONAL_OR_KEYWORD", "value": 1}},
        {"name": "num", "kind": {"name": "POSITIONAL_OR_KEYWORD", "value": 1}, "default": "1"},
        {"name": "delay", "kind": {"name": "POSITIONAL_OR_KEYWORD", "value": 1}, "default": "0.0"},
        {"name": "per_shot", "kind": {"name": "KEYWORD_ONLY", "value": 3}, "default": "None"},
        {"name": "md", "kind": {"name": "KEYWORD_ONLY", "value": 3}, "default": "None"}]},
    "sleep_plan": {"name": "sleep_plan", "parameters": [
        {"name": "duration", "kind": {"name": "POSITIONAL_OR_KEYWORD", "value": 1}, "default": "6.0"},
        {"name": "steps", "kind": {"name": "POSITIONAL_OR_KEYWORD", "value": 1}, "default": "6"}]},
    "flexible": {"name": "flexible", "parameters": [
        {"name": "first", "kind": {"name": "POSITIONAL_ONLY", "value": 0}},
        {"name": "rest", "kind": {"name": "VAR_POSITIONAL", "value": 2}},
        {"name": "must", "kind": {"name": "KEYWORD_ONLY", "value": 3}},
        {"name": "extra", "kind": {"name": "VAR_KEYWORD", "value": 4}}]},
}


def test_the_catalogue_covers_queue_editing_run_control_and_the_environment():
    assert set(ACTIONS) == {
        "queue:add", "queue:move", "queue:remove", "queue:clear",
        "run:start", "run:stop_queue", "run:cancel_stop_queue",
        "run:pause", "run:resume", "run:stop", "run:abort", "run:halt",
        "environment:open", "environment:close"}
    assert ACTIONS["run:pause"].path == "/api/re/pause" and ACTIONS["queue:add"].path == "/api/queue/item/add"
    assert all(a.path.startswith("/api/") for a in ACTIONS.values())
    listed = {a["action"]: a for a in action_catalogue()}
    assert listed["queue:move"]["exactly_one"] == [["uid", "pos"], ["pos_dest", "before_uid", "after_uid"]]
    assert listed["queue:add"]["params"]["name"]["required"] is True


@pytest.mark.parametrize(("action", "params"), [
    ("queue:add", {"name": "count", "kwargs": {"detectors": ["det"]}}),
    ("queue:add", {"name": "count", "args": [["det"]], "pos": "front"}),
    ("queue:add", {"name": "count", "after_uid": "abc"}),
    ("queue:move", {"uid": "abc", "pos_dest": "front"}),
    ("queue:move", {"pos": -1, "before_uid": "abc"}),
    ("queue:remove", {"uid": "abc"}),
    ("queue:remove", {"pos": 0}),
    ("run:pause", {}),
    ("run:pause", {"option": "immediate"}),
    ("run:start", {}),
    ("environment:open", {}),
])
def test_good_parameters_pass(action, params):
    assert params_problem(ACTIONS[action], params) is None


@pytest.mark.parametrize(("action", "params", "words"), [
    ("queue:add", {}, "needs the parameter 'name'"),
    ("queue:add", {"name": ""}, "non-empty string"),
    ("queue:add", {"name": 3}, "non-empty string"),
    ("queue:add", {"name": "count", "kwargs": ["det"]}, "'kwargs' must be an object"),
    ("queue:add", {"name": "count", "args": "det"}, "'args' must be a list"),
    ("queue:add", {"name": "count", "plan": "x"}, "takes no parameter 'plan'"),
    ("queue:add", {"name": "count", "pos": 1, "after_uid": "a"}, "at most one of pos, before_uid, after_uid"),
    ("queue:add", {"name": "count", "pos": True}, "integer index"),
    ("queue:add", {"name": "count", "pos": "middle"}, "integer index"),
    ("queue:move", {"uid": "a"}, "exactly one of pos_dest, before_uid, after_uid"),
    ("queue:move", {"pos_dest": "front"}, "exactly one of uid, pos"),
    ("queue:move", {"uid": "a", "pos": 1, "pos_dest": 0}, "exactly one of uid, pos (got uid, pos)"),
    ("queue:remove", {}, "exactly one of uid, pos"),
    ("queue:remove", {"uid": "x" * 201}, "longer than 200"),
    ("run:pause", {"option": "later"}, "one of deferred, immediate"),
    ("run:start", {"now": True}, "takes no parameter 'now' (its parameters: none)"),
    ("run:abort", [], "must be a JSON object"),
    ("queue:add", {"name": "count", "kwargs": {"md": {"x": "y" * MAX_PARAMS_BYTES}}}, "bytes of JSON"),
])
def test_bad_parameters_are_named(action, params, words):
    problem = params_problem(ACTIONS[action], params)
    assert problem is not None and words in problem, problem


@pytest.mark.parametrize(("name", "args", "kwargs"), [
    ("count", [], {"detectors": ["det"], "num": 3}),
    ("count", [["det"], 2], {"delay": 0.1}),
    ("sleep_plan", [], {}),
    ("flexible", [1, 2, 3], {"must": 1, "anything": 2}),
])
def test_plans_that_fit_their_description(name, args, kwargs):
    assert plan_problem(ALLOWED, name, args, kwargs) is None


@pytest.mark.parametrize(("name", "args", "kwargs", "words"), [
    ("scan", [], {}, "'scan' is not among the Queue Server's allowed plans (count, flexible, sleep_plan)"),
    ("count", [], {}, "needs the parameter detectors"),
    ("count", [], {"detectors": ["det"], "bogus": 1}, "has no parameter 'bogus'"),
    ("count", [["det"]], {"detectors": ["det"]}, "got 'detectors' twice"),
    ("sleep_plan", [1, 2, 3], {}, "at most 2 positional arguments, got 3"),
    ("flexible", [], {"must": 1}, "needs the parameter first"),
    ("flexible", [1], {}, "needs the parameter must"),
])
def test_plans_that_do_not_fit(name, args, kwargs, words):
    problem = plan_problem(ALLOWED, name, args, kwargs)
    assert problem is not None and words in problem, problem


def test_payloads_as_bluesky_httpserver_takes_them():
    add = payload_of(ACTIONS["queue:add"], {"name": "count", "kwargs": {"detectors": ["det"]}, "pos": "front"},
                     user="op")
    assert add == {"item": {"name": "count", "item_type": "plan", "kwargs": {"detectors": ["det"]},
                            "meta": {"ophydsite_user": "op"}}, "pos": "front"}
    assert payload_of(ACTIONS["queue:add"], {"name": "sleep_plan", "args": [1]}, user=None) == {
        "item": {"name": "sleep_plan", "item_type": "plan", "kwargs": {}, "args": [1]}}
    assert payload_of(ACTIONS["run:pause"], {}, user="op") == {"option": "deferred"}
    assert payload_of(ACTIONS["queue:move"], {"uid": "a", "pos_dest": 0}, user="op") == {"uid": "a", "pos_dest": 0}
    assert payload_of(ACTIONS["run:start"], {}, user="op") == {}
