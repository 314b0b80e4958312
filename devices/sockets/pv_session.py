"""The /api/v1/pv-socket protocol (ophyd-websocket 0.1.1 compatible, with additions).

See docs/protocol.md. Message shapes match the captured 0.1.1 wire traffic; additions
(``id`` echo, ``code`` on errors, set outcome replies, ``severity`` on values) are optional
fields that old clients ignore; batched delivery is only for clients that ask (``options``,
handled by the Session base for both sockets).
"""

from __future__ import annotations

import asyncio
from typing import Any

from devices.core import wire
from devices.core.hub import Update
from devices.core.requests import ProtocolError, PvRequest, decode_frame, parse_pv_request

from .session import READ_ONLY, READ_WRITE, Session, mode_under
from .spellings import Spellings

_VARIANTS = {(kind, writable): (f"pv-{kind}", writable) for kind in ("meta", "value") for writable in (True, False)}


class PvSession(Session):
    """One pv-socket connection."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held: dict[str, dict[str, Update]] = {}  # subscribeSafely waiting to confirm
        # Requests name PVs as the client spells them; from here on they are topics.
        self.spellings = Spellings(self.settings.default_protocol)

    # --- delivery from the hub --------------------------------------------------------------

    def deliver(self, pv: str, update: Update) -> None:
        mode = self.subscribed.get(pv)
        if mode is None:
            held = self._held.get(pv)
            if held is not None:
                held[update.kind] = update
            return
        self.mailbox.put_latest((pv, update.kind), self._render(pv, update, mode))

    def _render(self, pv: str, update: Update, mode: str) -> str:
        """The text for this client's variant, rendered once per process (no closure per call:
        this runs for every update of every client); a client's own spelling of the PV is a
        variant of its own."""
        variant: Any = _VARIANTS[(update.kind, mode == READ_WRITE)]
        spelled = self.spellings.spelled(pv)
        if spelled is not None:
            variant = (variant, spelled)
        render = wire.pv_meta_text if update.kind == "meta" else wire.pv_value_text
        return update.text(variant, render, update.msg, mode == READ_WRITE, spelled)

    def shown(self, name: str) -> str:
        return self.spellings.shown(name)

    # --- requests ---------------------------------------------------------------------------

    async def receive(self, text: str | None, data: bytes | None = None) -> None:
        try:
            request = parse_pv_request(decode_frame(text, data, self.limits), self.limits)
        except ProtocolError as exc:
            self.error(exc)
            return
        if request.names:
            self.spellings.resolve(request, self.subscribed.keys() | self._held.keys())
            if not request.names and request.action == "set":  # its one name was malformed
                self.error(ProtocolError("bad_name", request.invalid[0][1], request.request_id, "set"))
                return
        handler = getattr(self, "_do_" + request.action)
        await self.guarded(handler(request), request.request_id)

    async def _do_subscribe(self, request: PvRequest, mode: str = READ_WRITE) -> None:
        fresh, already, failed = self.partition(request, self._held)
        modes = await self.access_modes([*fresh, *already], mode, failed)
        for name in already:
            if name in modes and self.subscribed.get(name) != modes[name]:
                self.subscribed[name] = modes[name]
                self._redeliver(name)
        subscribed = [n for n in fresh if n in modes and not self.ended]
        for name in subscribed:
            self.subscribed[name] = modes[name]
        already = [n for n in already if n in modes]
        self._summary(subscribed, already, failed, request.request_id)
        if subscribed:
            await self.hub.subscribe(self, subscribed)  # type: ignore[arg-type]

    async def _do_subscribeReadOnly(self, request: PvRequest) -> None:  # noqa: N802 - protocol name
        await self._do_subscribe(request, READ_ONLY)

    async def _do_subscribeSafely(self, request: PvRequest) -> None:  # noqa: N802 - protocol name
        fresh, already, failed = self.partition(request, self._held)
        modes = await self.access_modes(fresh, READ_WRITE, failed)
        fresh = [n for n in fresh if n in modes]
        for name in fresh:
            self._held[name] = {}
        if fresh:
            await self.hub.subscribe(self, fresh)  # type: ignore[arg-type]
        self.background(self._confirm(fresh, already, failed, request.request_id, modes), request.request_id)

    async def _confirm(self, fresh: list[str], already: list[str], failed: list[dict[str, str]],
                       request_id: Any, modes: dict[str, str]) -> None:
        timeout = self.settings.connect_timeout_s
        results = await asyncio.gather(*(self.hub.wait_connected(n, timeout) for n in fresh))
        subscribed: list[str] = []
        refused: list[str] = []
        for name, ok in zip(fresh, results, strict=True):
            held = self._held.pop(name, {})
            if ok and not self.ended:
                self.subscribed[name] = modes[name]
                subscribed.append(name)
                for kind in ("meta", "value"):
                    if kind in held:
                        self.deliver(name, held[kind])
            else:
                refused.append(name)
                shown = self.shown(name)
                failed.append({"pv": shown, "error": f"{shown} did not connect within {timeout:g} s"})
        if refused:
            await self.hub.unsubscribe(self, refused)  # type: ignore[arg-type]
        self._summary(subscribed, already, failed, request_id)

    async def _do_unsubscribe(self, request: PvRequest) -> None:
        unsubscribed = [n for n in request.names if n in self.subscribed]
        missing = [n for n in request.names if n not in self.subscribed]
        missing += [n for n, _ in request.invalid]
        shown = [self.shown(n) for n in unsubscribed]
        for name in unsubscribed:
            del self.subscribed[name]
            self.mailbox.drop(name)
            self.spellings.forget(name)
        payload = {"action": "unsubscribe", "unsubscribed": shown,
                   "not_subscribed": [self.shown(n) for n in missing]}
        self.reply(payload, request.request_id)
        if unsubscribed:
            await self.hub.unsubscribe(self, unsubscribed)  # type: ignore[arg-type]

    async def _do_set(self, request: PvRequest) -> None:
        name = request.names[0]
        if self.subscribed.get(name) == READ_ONLY:
            why = f"{self.shown(name)} is subscribed read-only (subscribeReadOnly); subscribe with 'subscribe' to write"
            await self.record_refusal(target=name, kind="pv", signal="", value=request.value, why=why)
            self._set_error(ProtocolError("read_only", why, request.request_id, "set"), name)
            return
        timeout = request.timeout or self.settings.set_timeout_s
        self.background(self._set(name, request.value, timeout, request.request_id), request.request_id)

    async def _set(self, name: str, value: Any, timeout: float, request_id: Any) -> None:
        outcome = await self.audited_set(target=name, kind="pv", topic=name, signal="", value=value, timeout=timeout)
        status = outcome.get("status", "error")
        if status == "done":
            payload = {"action": "set", "status": "done", "target": self.shown(name), "message": outcome.get("message"),
                       "written": outcome.get("value"), "duration": outcome.get("duration_s")}
            self.reply(payload, request_id)
        else:
            self._set_error(ProtocolError(status, outcome.get("message", "set failed"), request_id, "set"), name)

    def _set_error(self, exc: ProtocolError, name: str) -> None:
        payload: dict[str, Any] = {"error": exc.message, "code": exc.code, "action": "set",
                                   "status": exc.code, "target": self.shown(name)}
        self.reply(payload, exc.request_id)

    async def _do_refresh(self, request: PvRequest) -> None:
        names = list(self.subscribed)
        payload = {"message": f"Refreshed {len(names)} PVs", "action": "refresh", "pvs": len(names)}
        self.reply(payload, request.request_id)
        for name in names:
            self._redeliver(name)

    async def review_access(self) -> None:
        names = list(self.subscribed)
        if not names:
            return
        decisions = await self.guard.decide_many(names, "pv")
        lost: list[str] = []
        for name, decision in zip(names, decisions, strict=True):
            mode = self.subscribed.get(name)
            if mode is None:
                continue
            if not decision.can_read:
                lost.append(name)
                del self.subscribed[name]
                self.mailbox.drop(name)
                self.reply({"error": f"No read access to {self.shown(name)} any more: {decision.reason}; "
                            "unsubscribed", "code": "forbidden", "pv": self.shown(name)})
                continue
            now = mode_under(mode, decision)
            if now != mode:
                self.subscribed[name] = now
                self._redeliver(name)  # write_access tells the new truth
        if lost:
            await self.hub.unsubscribe(self, lost)  # type: ignore[arg-type]

    # --- helpers ----------------------------------------------------------------------------

    def _redeliver(self, name: str) -> None:
        for update in self.hub.current(name):
            self.deliver(name, update)

    def _summary(self, subscribed: list[str], already: list[str], failed: list[dict[str, str]],
                 request_id: Any) -> None:
        payload = {"action": "subscribe", "subscribed": [self.shown(n) for n in subscribed],
                   "already_subscribed": [self.shown(n) for n in already], "failed": failed}
        self.reply(payload, request_id)

    async def end(self) -> None:
        held = list(self._held)
        self._held.clear()
        await super().end()
        if held:
            await self.hub.unsubscribe(self, held)  # type: ignore[arg-type]
