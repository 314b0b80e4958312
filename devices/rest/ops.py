"""What the REST API does, without HTTP: each operation returns (status code, JSON body).

Reads and writes go through the hub and the bridge like the sockets' (reads.py,
writes.Writer), under the same access rules, interlock, limits and audit. Response shapes
keep ophyd-websocket's fields (``"PV List"``, ``"200"``, ``success``, ``devices``, ``count``)
and add ``status``/``code`` and the set outcome.
"""

from __future__ import annotations

import asyncio
from typing import Any

from devices.access.guard import Guard
from devices.channel_layer.pvnames import PvNameError, topic_of
from devices.channel_layer.topics import name_problem
from devices.services.reads import Holder, Reading, read_now
from devices.services.writes import Interlock, Writer
from devices.sources.device_plan import DevicePlan
from ophydsite.settings.oas import OasSettings

Result = tuple[int, dict[str, Any]]

# A set outcome's status -> the HTTP status it is answered with.
SET_HTTP = {
    "done": 200, "forbidden": 403, "read_only": 403, "interlocked": 423, "rate_limited": 429,
    "superseded": 409, "audit_unavailable": 503, "bridge_unavailable": 503, "busy": 503,
    "not_connected": 408, "timeout": 504, "bad_value": 400, "out_of_limits": 400, "bad_field": 400,
    "ioc_refused": 502,
}


def error(status: int, message: str, code: str, **extra: Any) -> Result:
    return status, {"error": message, "code": code, **extra}


def _names_refusal(names: list[str], max_length: int, noun: str) -> Result | None:
    """The sockets' name rules on REST too: no empty, over-long, spaced, control or non-ASCII
    names (spaces would also reach the bridge's device topics, which no client may name)."""
    for name in names:
        why = name_problem(name, max_length, noun)
        if why is None and noun == "PV":
            try:
                topic_of(name)
            except PvNameError as exc:
                why = str(exc)
        if why is not None:
            return error(400, why, "bad_name", **{noun.lower(): name})
    return None


class RestOps:
    """The REST operations of one request (its guard: who, from where)."""

    def __init__(self, *, hub: Any, guard: Guard, settings: OasSettings, holder: Holder,
                 interlock: Interlock) -> None:
        self.hub = hub
        self.guard = guard
        self.settings = settings
        self.holder = holder
        self.writer = Writer(hub=hub, guard=guard, settings=settings, interlock=interlock)

    # --- access ---------------------------------------------------------------------------

    def _anonymous(self) -> bool:
        return not self.guard.principal.username

    def _not_allowed(self, what: str, reason: str) -> Result:
        if self._anonymous():
            return error(401, f"{what} needs a login or an API token (Authorization: Bearer <token>): {reason}",
                         "unauthenticated")
        return error(403, f"{what}: {reason}", "forbidden")

    def login_refusal(self) -> Result | None:
        """Listing anything needs a login when OAS_AUTH_REQUIRED is on."""
        if self.guard.policy.auth_required and self._anonymous():
            return self._not_allowed("Reading", "OAS_AUTH_REQUIRED is on")
        return None

    async def read_refusal(self, name: str, kind: str) -> Result | None:
        decision = await self.guard.decide(name, kind)
        if decision.can_read:
            return None
        return self._not_allowed(f"No read access to {name}", decision.reason)

    # --- PVs ------------------------------------------------------------------------------

    async def pv_list(self) -> Result:
        refused = self.login_refusal()
        if refused:
            return refused
        names = sorted(self.holder.names)
        return 200, {"PV List": names, "pvs": names, "count": len(names)}

    def _bad(self, names: list[str], noun: str = "PV") -> Result | None:
        return _names_refusal(names, self.settings.max_name_length, noun)

    def _topic(self, pv: str) -> str:
        """The topic of a PV as the request spells it (checked by ``_bad`` first)."""
        return topic_of(pv, self.settings.default_protocol)

    async def pv_read(self, pv: str, timeout: float | None) -> Result:
        refused = self._bad([pv]) or await self.read_refusal(self._topic(pv), "pv")
        if refused:
            return refused
        wait = self._timeout(timeout, self.settings.connect_timeout_s)
        topic = self._topic(pv)
        reading = (await read_now(self.hub, [topic], wait))[topic]
        if not reading.has_value:
            return error(408, f"PV {pv} did not connect within {wait:g} s", "not_connected", pv=pv)
        return 200, {pv: reading.as_read(), "pv": pv, "meta": reading.meta or {}}

    async def pv_hold(self, pv: str, timeout: float | None) -> Result:
        refused = self._bad([pv]) or await self.read_refusal(self._topic(pv), "pv")
        if refused:
            return refused
        topic = self._topic(pv)
        if topic in self.holder.names:
            return error(409, f"PV {pv} already exists, duplicate connections not allowed", "already_connected", pv=pv)
        wait = self._timeout(timeout, self.settings.connect_timeout_s)
        try:
            await self.holder.hold(self.hub, topic)
        except OverflowError as exc:
            return error(429, str(exc), "too_many", pv=pv)
        if not await self.hub.wait_connected(topic, wait):
            await self.holder.release(self.hub, topic)
            return error(408, f"Device {pv} is not connected (no answer within {wait:g} s)", "not_connected", pv=pv)
        return 201, {"201": f"PV {pv} is connected", "pv": pv, "status": "connected"}

    async def pv_release(self, pv: str) -> Result:
        refused = self._bad([pv])
        if refused:
            return refused
        if not await self.holder.release(self.hub, self._topic(pv)):
            return error(404, f"PV {pv} is not held by the REST API (POST /api/v1/pvs/{{pv}} holds one)",
                         "not_held", pv=pv)
        return 200, {"pv": pv, "status": "released"}

    async def pv_set(self, pv: str, value: Any, timeout: float | None) -> Result:
        bad = self._bad([pv])
        if bad:
            return bad
        wait = self._timeout(timeout, self.settings.set_timeout_s)
        topic = self._topic(pv)
        outcome = await self.writer.set(target=topic, kind="pv", topic=topic, signal="", value=value, timeout=wait)
        return self._set_result(outcome, {"pv": pv, "value": value},
                                f"Instruction accepted, set value of {pv} to {value}.")

    async def pv_set_many(self, items: list[tuple[str, Any, float | None]]) -> Result:
        refused = (self._bad([pv for pv, _, _ in items])
                   or await self._batch_refusal([(self._topic(pv), "pv", "", v) for pv, v, _ in items]))
        if refused:
            return refused
        results = await asyncio.gather(*(self.pv_set(pv, v, t) for pv, v, t in items))
        return self._batch(results)

    # --- devices ----------------------------------------------------------------------------

    async def device_list(self) -> Result:
        refused = self.login_refusal()
        if refused:
            return refused
        reply = await self.hub.describe([])
        if reply.get("status") == "bridge_unavailable":
            return error(503, str(reply.get("error")), "bridge_unavailable")
        known = [n for n in reply.get("known") or [] if (await self.guard.decide(n, "device")).can_read]
        message = (f"Found {len(known)} devices in registry" if known else
                   "No devices found in registry. Load startup files (--startup-dir, or the admin).")
        return 200, {"devices": known, "count": len(known), "message": message}

    async def device_info(self, name: str, timeout: float | None) -> Result:
        refused = self._bad([name], "Device") or await self.read_refusal(name, "device")
        if refused:
            return refused
        plans, failure = await self._plans([name])
        if failure:
            return failure
        wait = self._timeout(timeout, self.settings.connect_timeout_s)
        plan = plans[name]
        readings = await read_now(self.hub, [s.topic for s in plan.streams], wait)
        return 200, _info(plan, readings)

    async def devices_info(self, timeout: float | None) -> Result:
        listed = await self.device_list()
        if listed[0] != 200:
            return listed
        names = listed[1]["devices"]
        plans, failure = await self._plans(names, missing_ok=True)
        if failure:
            return failure
        wait = self._timeout(timeout, self.settings.connect_timeout_s)
        topics = [s.topic for p in plans.values() for s in p.streams]
        readings = await read_now(self.hub, topics, wait) if topics else {}
        return 200, {"devices": {n: _info(p, readings) for n, p in plans.items()}, "count": len(plans)}

    async def device_set(self, device: str, value: Any, component: str | None, timeout: float | None) -> Result:
        bad = self._bad([device], "Device")
        if bad:
            return bad
        plans, failure = await self._plans([device])
        if failure:
            return failure
        plan = plans[device]
        signals = [s.path or s.signal for s in plan.streams]
        if component:
            stream = plan.component(component)
            if stream is None:
                return error(400, f"Component '{component}' not found on device '{device}'", "bad_field",
                             device=device, device_type=plan.device_class.rsplit(".", 1)[-1], components=signals)
        else:
            stream = plan.stream(plan.set_default) if plan.set_default else None
            if stream is None:
                return error(400, f"Device {device} has several signals; name the one to set in 'component'",
                             "bad_field", device=device, components=signals)
        wait = self._timeout(timeout, self.settings.set_timeout_s)
        outcome = await self.writer.set(target=device, kind="device", topic=stream.topic, signal=stream.signal,
                                        value=value, timeout=wait)
        target = f"{device}.{component}" if component else device
        extra = {"device": device, "component": component, "signal": stream.signal, "value": value}
        return self._set_result(outcome, extra, f"Successfully set {target} to {value}")

    async def device_set_many(self, items: list[tuple[str, Any, str | None, float | None]]) -> Result:
        refused = (self._bad([d for d, _, _, _ in items], "Device")
                   or await self._batch_refusal([(d, "device", c or "", v) for d, v, c, _ in items]))
        if refused:
            return refused
        results = await asyncio.gather(*(self.device_set(d, v, c, t) for d, v, c, t in items))
        return self._batch(results)

    # --- helpers ----------------------------------------------------------------------------

    def _timeout(self, asked: float | None, default: float) -> float:
        if asked is None:
            return default
        return min(max(float(asked), 0.01), self.settings.set_timeout_max_s)

    async def _plans(self, names: list[str], missing_ok: bool = False) -> tuple[dict[str, DevicePlan], Result | None]:
        reply = await self.hub.describe(names)
        if reply.get("status") in {"bridge_unavailable", "error"}:
            return {}, error(503, str(reply.get("error") or "the bridge could not describe devices"),
                             "bridge_unavailable")
        plans: dict[str, DevicePlan] = {}
        for name in names:
            raw = (reply.get("devices") or {}).get(name)
            if raw:
                plans[name] = DevicePlan.from_dict(raw)
            elif not missing_ok:
                known = list(reply.get("known") or [])
                return {}, error(404, f"Device '{name}' not found in registry", "unknown_device",
                                 available_devices=known)
        return plans, None

    async def _batch_refusal(self, items: list[tuple[str, str, str, Any]]) -> Result | None:
        """A batch is written only if every target may be written: no half-done batch
        because of a permission; each refused item is on record."""
        decisions = await asyncio.gather(*(self.guard.decide(t, k) for t, k, _, _ in items))
        denied = [t for (t, _, _, _), d in zip(items, decisions, strict=True) if not d.can_write]
        if not denied:
            return None
        why = f"no write access to {', '.join(sorted(set(denied)))}; nothing in the batch was written"
        for (target, _, signal, value), decision in zip(items, decisions, strict=True):
            await self.guard.refused(target=target, signal=signal, value=value, before=None,
                                     decision=type(decision)(decision.level, decision.rule, why))
        return self._not_allowed("Batch refused", why)

    def _set_result(self, outcome: dict[str, Any], extra: dict[str, Any], done_text: str) -> Result:
        status = str(outcome.get("status", "error"))
        code = SET_HTTP.get(status, 500)
        if status == "forbidden" and self._anonymous():
            code = 401  # log in or send a token, then maybe
        common = {**extra, "status": status, "written": outcome.get("value"), "duration": outcome.get("duration_s"),
                  "message": outcome.get("message")}
        if status == "done":
            return code, {"200": done_text, "success": True, **common}
        return code, {"error": str(outcome.get("message") or "set failed"), "code": status, "success": False,
                      **common}

    @staticmethod
    def _batch(results: list[Result]) -> Result:
        done = sum(1 for code, _ in results if code == 200)
        body = {"results": [{"http_status": code, **payload} for code, payload in results],
                "done": done, "failed": len(results) - done, "success": done == len(results)}
        return (200 if done == len(results) else 207), body


def _info(plan: DevicePlan, readings: dict[str, Reading]) -> dict[str, Any]:
    """ophyd-websocket's device info (name, type, class, prefix, connected, description,
    values) from the plan and one reading of each streamed signal."""
    mine = [(s, readings.get(s.topic) or Reading(s.topic)) for s in plan.streams]
    return {
        "name": plan.device,
        "type": plan.device_class.rsplit(".", 1)[-1],
        "class": plan.device_class,
        "prefix": plan.prefix,
        "kind": plan.kind,
        "connected": bool(mine) and all(r.connected for _, r in mine),
        "description": {s.signal: _describe(s.topic, r) for s, r in mine},
        "values": {s.signal: {"value": r.value, "timestamp": r.timestamp} for s, r in mine if r.has_value},
        "signal_connected": {s.signal: r.connected for s, r in mine},
        "set_default": plan.set_default,
        "components": plan.components,
        "truncated": plan.truncated,
    }


def _describe(topic: str, reading: Reading) -> dict[str, Any]:
    entry = reading.describe()
    value = reading.value
    if isinstance(value, bool):
        entry.setdefault("dtype", "boolean")
    elif isinstance(value, int):
        entry.setdefault("dtype", "integer")
    elif isinstance(value, float):
        entry.setdefault("dtype", "number")
    elif isinstance(value, str):
        entry.setdefault("dtype", "string")
    elif isinstance(value, list):
        entry.setdefault("dtype", "array")
        entry.setdefault("shape", [len(value)])
    entry.setdefault("shape", [])
    if entry.get("source", "").startswith("PV:device "):
        entry["source"] = "ophyd:" + topic.split(" ", 2)[-1]
    return entry
