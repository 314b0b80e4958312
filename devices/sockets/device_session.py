"""The /api/v1/device-socket protocol (ophyd-websocket 0.1.1 compatible, with additions).

A device is a set of bridge topics, one per streamed signal (bridge/device_plan.py); the
bridge describes each device once and this session subscribes to its topics through the
process hub, so device signals share the PV machinery: one channel per signal for every
client, rate cap, latest-wins mailboxes. ``connected`` in every message is the device's:
true only while all its streamed signals are connected (``signal_connected`` is the one
signal's own state). See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from devices.core import wire
from devices.core.hub import Update
from devices.core.requests import DEVICE_WORDS, ProtocolError, PvRequest, decode_frame, parse_request
from devices.sources.device_plan import DevicePlan

from .session import READ_ONLY, READ_WRITE, Session, mode_under

KNOWN_SHOWN = 20  # device names listed in an "unknown device" error


@dataclass
class DeviceSub:
    """One device this socket follows."""

    plan: DevicePlan
    mode: str
    down: set[str] = field(default_factory=set)  # topics not (yet) connected
    aggregate: bool = False

    def __post_init__(self) -> None:
        self.replan(self.plan)

    def replan(self, plan: DevicePlan) -> None:
        """Take a (re-described) plan; its topics count as down until they report otherwise."""
        known_up = set(getattr(self, "topics", ())) - self.down
        self.plan = plan
        self.topics = [s.topic for s in plan.streams]
        self._signals = {s.topic: s.signal for s in plan.streams}
        self.down = set(self.topics) - known_up
        self.aggregate = bool(self.topics) and not self.down

    def signal_of(self, topic: str) -> str:
        return self._signals.get(topic, topic)

    def note(self, topic: str, connected: bool) -> bool:
        """Record one signal's state (O(1), it runs per message); True if the device's changed."""
        if connected:
            self.down.discard(topic)
        else:
            self.down.add(topic)
        now = bool(self.topics) and not self.down
        changed = now != self.aggregate
        self.aggregate = now
        return changed


class DeviceSession(Session):
    """One device-socket connection."""

    target_kind = "device"
    target_field = "device"
    targets_noun = "devices"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subscribed: dict[str, DeviceSub] = {}  # device -> subscription
        self._held: dict[str, DeviceSub] = {}  # subscribeSafely waiting for the connection
        self._topics: dict[str, str] = {}  # topic -> device, for subscribed and held devices

    # --- delivery from the hub --------------------------------------------------------------

    def deliver(self, topic: str, update: Update) -> None:
        device = self._topics.get(topic)
        sub = self.subscribed.get(device) if device is not None else None
        if sub is None or device is None:
            return  # a held (subscribeSafely) device is delivered from the hub's state on confirm
        if sub.note(topic, update.connected):
            for other in sub.topics:  # every signal's messages now carry the new device state
                if other != topic:
                    for current in self.hub.current(other):
                        self._put(device, sub, other, current)
        self._put(device, sub, topic, update)

    def _put(self, device: str, sub: DeviceSub, topic: str, update: Update) -> None:
        writable, connected = sub.mode == READ_WRITE, sub.aggregate
        signal = sub.signal_of(topic)
        if update.kind == "meta":
            text = update.text(("dev-meta", writable, connected),
                               wire.device_meta_text, update.msg, device, signal, writable, connected)
        else:
            text = update.text(("dev-value", writable, connected),
                               wire.device_value_text, update.msg, device, signal, writable, connected)
        self.mailbox.put_latest((topic, update.kind), text)

    def _redeliver(self, device: str) -> None:
        sub = self.subscribed.get(device)
        if sub is None:
            return
        for topic in sub.topics:
            for update in self.hub.current(topic):
                sub.note(topic, update.connected)
        for topic in sub.topics:
            for update in self.hub.current(topic):
                self._put(device, sub, topic, update)

    # --- requests ---------------------------------------------------------------------------

    async def receive(self, text: str | None, data: bytes | None = None) -> None:
        try:
            request = parse_request(decode_frame(text, data, self.limits), self.limits, DEVICE_WORDS)
        except ProtocolError as exc:
            self.error(exc)
            return
        handler = getattr(self, "_do_" + request.action)
        await self.guarded(handler(request), request.request_id)

    async def _describe(self, names: list[str]) -> tuple[dict[str, DevicePlan], list[dict[str, str]]]:
        """Plans of the named devices from the bridge, and a failure entry for each unknown one."""
        if not names:
            return {}, []
        reply = await self.hub.describe(names)
        if reply.get("status") in {"bridge_unavailable", "error"}:
            why = str(reply.get("error") or "the bridge could not describe the devices")
            return {}, [{"device": n, "error": why, "code": "bridge_unavailable"} for n in names]
        plans: dict[str, DevicePlan] = {}
        failed: list[dict[str, str]] = []
        known = list(reply.get("known") or [])
        for name in names:
            raw = (reply.get("devices") or {}).get(name)
            if raw:
                plans[name] = DevicePlan.from_dict(raw)
            else:
                failed.append({"device": name, "error": _unknown(name, known), "code": "unknown_device"})
        return plans, failed

    async def _do_subscribe(self, request: PvRequest, mode: str = READ_WRITE) -> None:
        fresh, already, failed = self.partition(request, self._held)
        modes = await self.access_modes([*fresh, *already], mode, failed)
        plans, unknown = await self._describe([n for n in fresh if n in modes])
        failed += unknown
        for name in already:
            sub = self.subscribed.get(name)
            if sub is not None and name in modes and sub.mode != modes[name]:
                sub.mode = modes[name]
                self._redeliver(name)
        already = [n for n in already if n in modes]
        topics: list[str] = []
        for name, plan in plans.items():
            if self.ended or name in self.subscribed or name in self._held:
                continue
            self.subscribed[name] = DeviceSub(plan, modes[name])
            for topic in [s.topic for s in plan.streams]:
                self._topics[topic] = name
                topics.append(topic)
        self._summary(list(plans), already, failed, request.request_id, plans)
        if topics:
            await self.hub.subscribe(self, topics)  # type: ignore[arg-type]

    async def _do_subscribeReadOnly(self, request: PvRequest) -> None:  # noqa: N802 - protocol name
        await self._do_subscribe(request, READ_ONLY)

    async def _do_subscribeSafely(self, request: PvRequest) -> None:  # noqa: N802 - protocol name
        fresh, already, failed = self.partition(request, self._held)
        modes = await self.access_modes(fresh, READ_WRITE, failed)
        plans, unknown = await self._describe([n for n in fresh if n in modes])
        failed += unknown
        topics: list[str] = []
        for name, plan in plans.items():
            self._held[name] = DeviceSub(plan, modes[name])
            for stream in plan.streams:
                self._topics[stream.topic] = name
                topics.append(stream.topic)
        if topics:
            await self.hub.subscribe(self, topics)  # type: ignore[arg-type]
        self.background(self._confirm(list(plans), already, failed, request.request_id), request.request_id)

    async def _confirm(self, names: list[str], already: list[str], failed: list[dict[str, str]],
                       request_id: Any) -> None:
        timeout = self.settings.connect_timeout_s
        subscribed: list[str] = []
        plans: dict[str, DevicePlan] = {}
        for name in names:
            sub = self._held.get(name)
            if sub is None:
                continue
            results = await asyncio.gather(*(self.hub.wait_connected(t, timeout) for t in sub.topics))
            self._held.pop(name, None)
            missing = [sub.signal_of(t) for t, ok in zip(sub.topics, results, strict=True) if not ok]
            if not missing and not self.ended:
                self.subscribed[name] = sub
                subscribed.append(name)
                plans[name] = sub.plan
                self._redeliver(name)
            else:
                failed.append({"device": name, "error": (
                    f"Device {name} did not connect within {timeout:g} s (not connected: {', '.join(missing)})")})
                await self._drop_topics(sub.topics)
        self._summary(subscribed, already, failed, request_id, plans)

    async def _do_unsubscribe(self, request: PvRequest) -> None:
        unsubscribed = [n for n in request.names if n in self.subscribed]
        missing = [n for n in request.names if n not in self.subscribed] + [n for n, _ in request.invalid]
        topics: list[str] = []
        for name in unsubscribed:
            topics += self.subscribed.pop(name).topics
        self.reply({"action": "unsubscribe", "unsubscribed": unsubscribed, "not_subscribed": missing},
                   request.request_id)
        await self._drop_topics(topics)

    async def _drop_topics(self, topics: list[str]) -> None:
        for topic in topics:
            self._topics.pop(topic, None)
            self.mailbox.drop(topic)
        if topics:
            await self.hub.unsubscribe(self, topics)  # type: ignore[arg-type]

    async def _do_set(self, request: PvRequest) -> None:
        name, rid = request.names[0], request.request_id
        sub = self.subscribed.get(name)
        if sub is not None and sub.mode == READ_ONLY:
            why = f"{name} is subscribed read-only (subscribeReadOnly); subscribe with 'subscribe' to write"
            await self.record_refusal(target=name, kind="device", signal=request.signal or "", value=request.value,
                                      why=why)
            raise ProtocolError("read_only", why, rid, "set")
        if sub is not None:
            plan = sub.plan
        else:
            plans, unknown = await self._describe([name])
            if unknown:
                raise ProtocolError(unknown[0]["code"], unknown[0]["error"], rid, "set")
            plan = plans[name]
        signal = request.signal or plan.set_default
        signals = ", ".join(s.signal for s in plan.streams)
        if signal is None:
            raise ProtocolError("bad_field", f"Device {name} has several signals; name the one to set with "
                                f"'signal': {signals}", rid, "set")
        stream = plan.stream(signal)
        if stream is None:
            raise ProtocolError("bad_field", f"Device {name} has no signal {signal!r}; its signals: {signals}",
                                rid, "set")
        timeout = request.timeout or self.settings.set_timeout_s
        self.background(self._set(name, signal, stream.topic, request.value, timeout, rid), rid)

    async def _set(self, name: str, signal: str, topic: str, value: Any, timeout: float, rid: Any) -> None:
        outcome = await self.audited_set(target=name, kind="device", topic=topic, signal=signal, value=value,
                                         timeout=timeout)
        status = outcome.get("status", "error")
        if status == "done":
            self.reply({"action": "set", "status": "done", "device": name, "signal": signal,
                        "message": f"Successfully set {name} to {value}", "written": outcome.get("value"),
                        "duration": outcome.get("duration_s")}, rid)
        else:
            self.reply({"error": outcome.get("message", "set failed"), "code": status, "status": status,
                        "action": "set", "device": name, "signal": signal}, rid)

    async def _do_stop(self, request: PvRequest) -> None:
        """Halt the moves of a positioner device (every positioner it streams)."""
        name, rid = request.names[0], request.request_id
        sub = self.subscribed.get(name)
        if sub is None:
            raise ProtocolError("not_subscribed", f"Subscribe to {name} before stopping it", rid, "stop")
        if sub.mode == READ_ONLY:
            raise ProtocolError("read_only", f"{name} is subscribed read-only (subscribeReadOnly)", rid, "stop")
        movers = [s for s in sub.plan.streams if s.role == "readback"]
        if not movers:
            raise ProtocolError("bad_field", f"Device {name} is not a positioner; nothing to stop", rid, "stop")
        self.background(self._stop(name, [s.topic for s in movers], rid), rid)

    async def _stop(self, name: str, topics: list[str], rid: Any) -> None:
        async def stop_all() -> dict[str, Any]:
            outcomes = await asyncio.gather(*(self.hub.stop_motion(t) for t in topics))
            return next((o for o in outcomes if o.get("status") != "done"), outcomes[0])

        outcome = await self.writer.guarded_action(target=name, kind="device", value="stop", act=stop_all)
        if outcome.get("status") == "done":
            self.reply({"action": "stop", "status": "done", "device": name, "message": f"Stopped {name}"}, rid)
        else:
            self.reply({"error": outcome.get("message", "stop failed"), "code": outcome.get("status"),
                        "action": "stop", "device": name}, rid)

    async def _do_refresh(self, request: PvRequest) -> None:
        names = list(self.subscribed)
        self.reply({"message": f"Refreshed {len(names)} devices", "action": "refresh", "devices": len(names)},
                   request.request_id)
        for name in names:
            self._redeliver(name)

    async def review_access(self) -> None:
        names = list(self.subscribed)
        if not names:
            return
        decisions = await self.guard.decide_many(names, "device")
        for name, decision in zip(names, decisions, strict=True):
            sub = self.subscribed.get(name)
            if sub is None:
                continue
            if not decision.can_read:
                del self.subscribed[name]
                self.reply({"error": f"No read access to {name} any more: {decision.reason}; unsubscribed",
                            "code": "forbidden", "device": name})
                await self._drop_topics(sub.topics)
                continue
            now = mode_under(sub.mode, decision)
            if now != sub.mode:
                sub.mode = now
                self._redeliver(name)

    # --- reloads ----------------------------------------------------------------------------

    def registry_reloaded(self, devices: list[str]) -> None:
        """Runs on the loop when the bridge reloaded: follow the new objects or report them gone."""
        if not self.ended and self.subscribed:
            self.background(self._follow_reload(set(devices)))

    async def _follow_reload(self, devices: set[str]) -> None:
        gone = [n for n in self.subscribed if n not in devices]
        for name in gone:
            sub = self.subscribed.pop(name)
            self.reply({"error": f"Device {name} is no longer in the device registry after a reload; "
                        "it was unsubscribed", "code": "device_gone", "device": name})
            await self._drop_topics(sub.topics)
        kept = list(self.subscribed)
        plans, _ = await self._describe(kept)
        for name, plan in plans.items():
            sub = self.subscribed.get(name)
            if sub is None:
                continue
            old, new = set(sub.topics), {s.topic for s in plan.streams}
            sub.replan(plan)
            for topic in new - old:
                self._topics[topic] = name
            await self._drop_topics(sorted(old - new))
            if new - old:
                await self.hub.subscribe(self, sorted(new - old))  # type: ignore[arg-type]
            self._redeliver(name)

    # --- helpers ----------------------------------------------------------------------------

    def _summary(self, subscribed: list[str], already: list[str], failed: list[dict[str, str]],
                 request_id: Any, plans: dict[str, DevicePlan]) -> None:
        payload: dict[str, Any] = {"action": "subscribe", "subscribed": subscribed,
                                   "already_subscribed": already, "failed": failed}
        if plans:
            payload["details"] = {n: _details(p) for n, p in plans.items() if n in subscribed}
        self.reply(payload, request_id)

    async def end(self) -> None:
        if self.ended:
            return
        topics = list(self._topics)
        self.subscribed.clear()
        self._held.clear()
        self._topics.clear()
        await super().end()
        if topics:
            await self.hub.unsubscribe(self, topics)  # type: ignore[arg-type]


def _details(plan: DevicePlan) -> dict[str, Any]:
    """What a client learns about a device on subscribe (an addition to the 0.1.1 summary)."""
    return {"class": plan.device_class, "kind": plan.kind, "signals": [s.signal for s in plan.streams],
            "set_default": plan.set_default, "truncated": plan.truncated, "components": plan.components}


def _unknown(name: str, known: list[str]) -> str:
    shown = ", ".join(known[:KNOWN_SHOWN]) + (", ..." if len(known) > KNOWN_SHOWN else "")
    return f"{name} is not in the device registry (known devices: {shown or 'none loaded'})"
