"""pycaserver's /monitor protocol over the same hub and bridge as the pv-socket.

Actions ``connect`` and ``disconnect``; a frame that is not JSON is taken as a PV name to
connect to. Replies are ``connection`` and ``monitor`` messages (see docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

from devices.channel_layer.pvnames import PvNameError
from devices.core import wire
from devices.core.hub import Update
from devices.core.requests import ProtocolError, decode_frame, name_problem, request_id_of

from .session import Session
from .spellings import Spellings

ACTIONS = ("connect", "disconnect")


class MonitorSession(Session):
    """One /monitor connection."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._conn_sent: dict[str, bool] = {}
        self.spellings = Spellings(self.settings.default_protocol)  # as on the pv-socket

    def deliver(self, pv: str, update: Update) -> None:
        if pv not in self.subscribed:
            return
        connected = update.connected
        name = self.spellings.shown(pv)
        if self._conn_sent.get(pv) != connected:
            self._conn_sent[pv] = connected
            self.mailbox.put_latest((pv, "connection"), update.text(
                ("mon-conn", connected, name), wire.connection_text, name, connected))
        if update.kind == "value" and connected:
            units = self._units(pv)
            self.mailbox.put_latest((pv, "monitor"), update.text(
                ("mon-value", units, name), wire.monitor_text, update.msg, units, name))

    def shown(self, name: str) -> str:
        return self.spellings.shown(name)

    def _units(self, pv: str) -> str | None:
        for update in self.hub.current(pv):
            if update.kind == "meta":
                return update.msg["meta"].get("units")
        return None

    async def receive(self, text: str | None, data: bytes | None = None) -> None:
        try:
            action, spelling, rid = self._parse(text, data)
            name = self.spellings.topic(spelling, self.subscribed)
        except PvNameError as exc:
            self.error(ProtocolError("bad_name", str(exc), rid, action))
            return
        except ProtocolError as exc:
            self.error(exc)
            return
        try:
            await self.guarded(self._act(action, name, rid), rid)
        finally:
            if name not in self.subscribed:  # refused or disconnected: no spelling to keep
                self.spellings.forget(name)

    async def _act(self, action: str, name: str, rid: Any) -> None:
        if action == "connect":
            if name in self.subscribed:
                return
            if len(self.subscribed) >= self.settings.max_subscriptions:
                self.error(ProtocolError("too_many", (
                    f"Subscription limit of {self.settings.max_subscriptions} PVs per socket reached "
                    "(OAS_MAX_SUBSCRIPTIONS); disconnect some first"), rid, action))
                return
            decision = await self.guard.decide(name, "pv")
            if not decision.can_read:
                self.error(ProtocolError("forbidden", f"No read access to {self.shown(name)}: {decision.reason}",
                                         rid, action))
                return
            self.subscribed[name] = True
            await self.hub.subscribe(self, [name])  # type: ignore[arg-type]
        elif name in self.subscribed:  # disconnecting an unknown PV is silently ignored
            del self.subscribed[name]
            self._conn_sent.pop(name, None)
            self.mailbox.drop(name)
            await self.hub.unsubscribe(self, [name])  # type: ignore[arg-type]

    async def review_access(self) -> None:
        names = list(self.subscribed)
        decisions = await self.guard.decide_many(names, "pv")
        lost = [n for n, d in zip(names, decisions, strict=True) if not d.can_read]
        for name in lost:
            del self.subscribed[name]
            self._conn_sent.pop(name, None)
            self.mailbox.drop(name)
            self.error(ProtocolError("forbidden", f"No read access to {self.shown(name)} any more; disconnected", None,
                                     "connect"))
        if lost:
            await self.hub.unsubscribe(self, lost)  # type: ignore[arg-type]

    def _parse(self, text: str | None, data: bytes | None) -> tuple[str, str, Any]:
        try:
            message = decode_frame(text, data, self.limits)
        except ProtocolError as exc:
            if exc.code != "bad_json" or text is None:
                raise
            message = text.strip()  # pycaserver: a bare string is a PV name
        if isinstance(message, str):
            action, name, rid = "connect", message, None
        elif isinstance(message, dict):
            rid = request_id_of(message)
            action = message.get("action")
            if not isinstance(action, str) or action not in ACTIONS:
                raise ProtocolError("unknown_action", (
                    f"Unknown action {str(action)[:50]!r}; allowed: connect, disconnect. "
                    "Example: {\"action\": \"connect\", \"pv\": \"IOC:m1\"}"), rid)
            name = message.get("pv")
            if not isinstance(name, str):
                raise ProtocolError("bad_field", f"'{action}' needs 'pv' as a string", rid, action)
        else:
            raise ProtocolError("not_object", "Send {\"action\": \"connect\", \"pv\": NAME} or a bare PV name")
        why = name_problem(name, self.limits.max_name_length)
        if why is not None:
            raise ProtocolError("bad_name", why, rid, action)
        return action, name, rid

    def error(self, exc: ProtocolError) -> None:
        payload: dict[str, Any] = {"msg_type": "error", "error": exc.message, "code": exc.code}
        if exc.action:
            payload["action"] = exc.action
        self.reply(payload, exc.request_id)
