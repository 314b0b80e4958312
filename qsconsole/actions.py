"""The queue actions an operator may take, each mapped to its bluesky-httpserver endpoint.

Plain data and pure checks (no Django, no HTTP): ``ACTIONS`` names every action
(``queue:add``, ``run:pause``, ``environment:open`` …) with its parameters; ``params_problem``
says why a request's parameters cannot be sent, ``plan_problem`` why a plan item does not fit
the Queue Server's allowed plans, and ``payload_of`` builds the body bluesky-httpserver takes.
The access-rule pattern of target ``qserver`` is matched against the action's name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_PARAMS_BYTES = 65536  # the JSON of one action's parameters
MAX_UID_LENGTH = 200
POSITIONS = ("front", "back")
PAUSE_OPTIONS = ("deferred", "immediate")


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` is str | pos (an index or front/back) | list | dict | option."""

    kind: str
    required: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Action:
    name: str
    path: str  # bluesky-httpserver's endpoint (all POST)
    help: str
    params: Mapping[str, Param] = field(default_factory=dict)
    exactly_one: tuple[tuple[str, ...], ...] = ()  # of each group, exactly one must be given
    at_most_one: tuple[tuple[str, ...], ...] = ()


_UID = Param("str", help="an item's item_uid")
_POS = Param("pos", help="a position in the queue: an index (negative from the back) or 'front'/'back'")
_DEST_BEFORE = Param("str", help="put it before the item with this item_uid")
_DEST_AFTER = Param("str", help="put it after the item with this item_uid")

ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("queue:add", "/api/queue/item/add", "Add a plan to the queue (at the back unless told)", {
        "name": Param("str", required=True, help="the plan's name, one of the allowed plans"),
        "args": Param("list", help="positional arguments"),
        "kwargs": Param("dict", help="keyword arguments, by the plan's parameter names"),
        "pos": _POS, "before_uid": _DEST_BEFORE, "after_uid": _DEST_AFTER},
        at_most_one=(("pos", "before_uid", "after_uid"),)),
    Action("queue:move", "/api/queue/item/move", "Move a queue item (by uid or position) to a new place", {
        "uid": _UID, "pos": _POS,
        "pos_dest": Param("pos", help="the new position: an index or 'front'/'back'"),
        "before_uid": _DEST_BEFORE, "after_uid": _DEST_AFTER},
        exactly_one=(("uid", "pos"), ("pos_dest", "before_uid", "after_uid"))),
    Action("queue:remove", "/api/queue/item/remove", "Remove a queue item (by uid or position)",
           {"uid": _UID, "pos": _POS}, exactly_one=(("uid", "pos"),)),
    Action("queue:clear", "/api/queue/clear", "Remove every item from the queue"),
    Action("run:start", "/api/queue/start", "Start running the queue"),
    Action("run:stop_queue", "/api/queue/stop", "Stop the queue after the running plan ends"),
    Action("run:cancel_stop_queue", "/api/queue/stop/cancel", "Withdraw a pending stop of the queue"),
    Action("run:pause", "/api/re/pause", "Pause the running plan: at its next checkpoint (deferred) or now", {
        "option": Param("option", choices=PAUSE_OPTIONS, help="deferred (default) or immediate")}),
    Action("run:resume", "/api/re/resume", "Resume the paused plan"),
    Action("run:stop", "/api/re/stop", "End the paused plan, successfully"),
    Action("run:abort", "/api/re/abort", "End the paused plan as failed"),
    Action("run:halt", "/api/re/halt", "End the paused plan at once, without cleanup"),
    Action("environment:open", "/api/environment/open", "Open the RE worker environment"),
    Action("environment:close", "/api/environment/close", "Close the RE worker environment"),
)}


def action_catalogue() -> list[dict[str, Any]]:
    """The actions as JSON (for a page building its buttons and forms)."""
    return [{"action": a.name, "help": a.help, "endpoint": a.path,
             "params": {n: {"kind": p.kind, "required": p.required, "choices": list(p.choices), "help": p.help}
                        for n, p in a.params.items()},
             "exactly_one": [list(g) for g in a.exactly_one], "at_most_one": [list(g) for g in a.at_most_one]}
            for a in ACTIONS.values()]


def _value_problem(name: str, spec: Param, value: Any) -> str | None:
    if spec.kind == "str":
        if not isinstance(value, str) or not value.strip():
            return f"'{name}' must be a non-empty string"
        if len(value) > MAX_UID_LENGTH:
            return f"'{name}' is longer than {MAX_UID_LENGTH} characters"
    elif spec.kind == "pos":
        if isinstance(value, bool) or not (isinstance(value, int) or value in POSITIONS):
            return f"'{name}' must be an integer index or one of {', '.join(POSITIONS)}"
    elif spec.kind == "list":
        if not isinstance(value, list):
            return f"'{name}' must be a list"
    elif spec.kind == "dict":
        if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
            return f"'{name}' must be an object with parameter names as keys"
    elif spec.kind == "option" and value not in spec.choices:
        return f"'{name}' must be one of {', '.join(spec.choices)}"
    return None


def params_problem(action: Action, params: Any) -> str | None:
    """Why ``params`` cannot be sent for ``action`` (unknown, missing, wrongly typed), or None."""
    if not isinstance(params, dict):
        return "The parameters must be a JSON object"
    extra = sorted(set(params) - set(action.params))
    if extra:
        known = ", ".join(action.params) or "none"
        return f"{action.name} takes no parameter {', '.join(map(repr, extra))} (its parameters: {known})"
    for name, spec in action.params.items():
        if name not in params:
            if spec.required:
                return f"{action.name} needs the parameter '{name}' ({spec.help})"
            continue
        problem = _value_problem(name, spec, params[name])
        if problem:
            return f"{action.name}: {problem}"
    for group in action.exactly_one:
        given = [n for n in group if n in params]
        if len(given) != 1:
            return f"{action.name} needs exactly one of {', '.join(group)}" + (
                f" (got {', '.join(given)})" if given else "")
    for group in action.at_most_one:
        given = [n for n in group if n in params]
        if len(given) > 1:
            return f"{action.name} takes at most one of {', '.join(group)} (got {', '.join(given)})"
    try:
        size = len(json.dumps(params))
    except (TypeError, ValueError):
        return "The parameters must be plain JSON"
    if size > MAX_PARAMS_BYTES:
        return f"The parameters are {size} bytes of JSON; at most {MAX_PARAMS_BYTES} are accepted"
    return None


# inspect.Parameter kinds as the Queue Server describes them ({"name": ..., "value": n}).
_POSITIONAL = (0, 1)
_VAR_POSITIONAL, _KEYWORD_ONLY, _VAR_KEYWORD = 2, 3, 4


def plan_problem(allowed: Mapping[str, Any], name: str, args: list[Any], kwargs: Mapping[str, Any]) -> str | None:
    """Why plan ``name`` with these arguments would be refused, judged from the Queue Server's
    allowed plans (``plans_allowed`` of ``/api/plans/allowed``): not allowed, an unknown
    parameter, a missing required one, too many positional arguments. Types are left to the
    Queue Server, whose message comes back."""
    plan = allowed.get(name)
    if not isinstance(plan, Mapping):
        names = sorted(allowed)
        shown = ", ".join(names[:30]) + (" …" if len(names) > 30 else "")
        return f"The plan {name!r} is not among the Queue Server's allowed plans ({shown or 'none'})"
    described = [p for p in plan.get("parameters", []) if isinstance(p, Mapping) and "name" in p]
    kinds = {p["name"]: (p.get("kind") or {}).get("value", 1) for p in described}
    positional = [n for n, k in kinds.items() if k in _POSITIONAL]
    if len(args) > len(positional) and _VAR_POSITIONAL not in kinds.values():
        return f"The plan {name!r} takes at most {len(positional)} positional arguments, got {len(args)}"
    by_args = set(positional[:len(args)])
    takes_any = _VAR_KEYWORD in kinds.values()
    for key in kwargs:
        if key in by_args:
            return f"The plan {name!r} got '{key}' twice (positionally and by name)"
        if key not in kinds or kinds[key] in (_VAR_POSITIONAL, _VAR_KEYWORD) or kinds[key] == 0:
            if not takes_any:
                return f"The plan {name!r} has no parameter '{key}' (its parameters: {', '.join(kinds) or 'none'})"
    missing = [p["name"] for p in described
               if "default" not in p and kinds[p["name"]] in (*_POSITIONAL, _KEYWORD_ONLY)
               and p["name"] not in kwargs and p["name"] not in by_args]
    if missing:
        return f"The plan {name!r} needs the parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return None


def payload_of(action: Action, params: Mapping[str, Any], *, user: str | None) -> dict[str, Any]:
    """The JSON body bluesky-httpserver takes for ``action`` (params already checked). A plan
    item carries who added it (``meta.ophydsite_user``): the Queue Server itself only knows
    the server's single API-key user."""
    if action.name == "queue:add":
        item: dict[str, Any] = {"name": params["name"], "item_type": "plan", "kwargs": dict(params.get("kwargs", {}))}
        if params.get("args"):
            item["args"] = list(params["args"])
        if user:
            item["meta"] = {"ophydsite_user": user}
        return {"item": item, **{k: params[k] for k in ("pos", "before_uid", "after_uid") if k in params}}
    if action.name == "run:pause":
        return {"option": params.get("option", "deferred")}
    return dict(params)
