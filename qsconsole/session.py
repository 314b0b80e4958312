"""The /api/v1/qs-console-socket protocol (ophyd-websocket compatible, with additions).

Each console entry goes out as the Queue Server published it, ``{"time", "msg"}``, plus
``seq``: its number. A new client first gets the source state and the last
OAS_QS_CONSOLE_BACKLOG entries; with ``?after=SEQ`` in the URL (or the message
``{"action": "replay", "after": SEQ}``) it gets every entry after SEQ instead, so a
reconnect loses nothing the ring still holds. ``{"console": "connected"|"disconnected", ...}``
tells when the Queue Server comes and goes. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from devices.core import ProtocolError, decode_frame, dumps, request_id_of
from devices.sockets import CLOSE_UNAUTHORIZED, Session

FEED_WINDOW = 100  # console messages queued in the mailbox at once; the rest wait here
FEED_POLL_S = 0.02


class QsConsoleSession(Session):
    """One console socket."""

    targets_noun = "console lines"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready = False
        self._early: list[dict[str, Any]] = []  # live entries that came during the first replay
        self._last_sent = 0
        self._state_version = 0  # of the newest source state passed on (relay.py numbers them)
        self._queue: deque[str] = deque()
        self._skipped = 0
        self._feeder: asyncio.Task[None] | None = None

    async def start(self, after: int | None = None) -> None:
        """Send the state and the backlog (or, with ``after``, the replay the URL asked for),
        then go live."""
        if self.guard.policy.auth_required and not self.guard.principal.username:
            self.reply({"error": "The Queue Server console needs a login or an API token (OAS_AUTH_REQUIRED)",
                        "code": "unauthenticated"})
            await asyncio.sleep(0.05)
            await self.end()
            await self._close(CLOSE_UNAUTHORIZED)
            return
        await self.hub.console_listen(self)
        await self._replay(after, announce=after is not None)
        self._ready = True
        early, self._early = self._early, []
        self.console_lines(early)

    # --- from the hub -----------------------------------------------------------------------

    def console_lines(self, entries: list[dict[str, Any]]) -> None:
        if not self._ready:
            self._early.extend(entries)
            return
        for entry in entries:
            seq = entry.get("seq")
            if isinstance(seq, int) and seq > self._last_sent:
                self._last_sent = seq
                self._enqueue(_line_text(entry))

    def console_state(self, state: dict[str, Any]) -> None:
        """A newer state than the last one passed on, or else dropped: a replay answer is passed
        on when its task resumes, which can be after the hub dispatched a later group state."""
        version = state.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            if version < self._state_version:
                return
            self._state_version = version
        self.reply(_state_payload(state))

    # --- requests -----------------------------------------------------------------------------

    async def receive(self, text: str | None, data: bytes | None = None) -> None:
        try:
            message = decode_frame(text, data, self.limits)
            if not isinstance(message, dict):
                raise ProtocolError("not_object", 'Send {"action": "replay", "after": SEQ}')
            rid = request_id_of(message)
            action = message.get("action")
            if action != "replay":
                raise ProtocolError("unknown_action", (
                    f"Unknown action {str(action)[:50]!r}; the console socket takes "
                    '{"action": "replay", "after": SEQ} (SEQ: the last "seq" you have, 0 for all kept)'), rid)
            after = message.get("after", 0)
            if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                raise ProtocolError("bad_field", "'after' must be a whole number ≥ 0 (a 'seq' you received)",
                                    rid, "replay")
        except ProtocolError as exc:
            self.error(exc)
            return
        await self.guarded(self._replay(after, announce=True, request_id=rid), rid)

    async def _replay(self, after: int | None, *, announce: bool, request_id: Any = None) -> None:
        backlog = self.settings.qs_console_backlog
        reply = await self.hub.console_replay(after=after, last=backlog)
        if reply is None:
            if self._state_version == 0:  # a state the bridge sent meanwhile says more than silence
                self.reply({"console": "disconnected", "connected": False,
                            "message": "The bridge did not answer; is it running (manage.py runbridge)?"})
            return
        self.console_state(reply.get("state") or {})
        entries = [e for e in reply.get("entries") or [] if isinstance(e.get("seq"), int)]
        for entry in entries:
            self._enqueue(_line_text(entry))
        if entries:
            self._last_sent = max(self._last_sent, entries[-1]["seq"])
        if announce:
            payload = {"action": "replay", "after": after, "sent": len(entries),
                       "complete": bool(reply.get("complete")), "last_seq": reply.get("last_seq")}
            if not payload["complete"]:
                payload["message"] = ("Some entries after the one asked for are no longer kept "
                                      "(OAS_QS_CONSOLE_BUFFER) or were past one answer; ask again after the last seq")
            self._enqueue(dumps(payload) if request_id is None else dumps({**payload, "id": request_id}))

    # --- ordered delivery with a bounded backlog ---------------------------------------------------

    def _enqueue(self, text: str) -> None:
        """Console messages must arrive in order and all, but a slow reader must not hold
        unbounded memory: at most OAS_QS_CONSOLE_BUFFER wait here; older ones are skipped and
        the client is told how to replay them."""
        self._queue.append(text)
        if len(self._queue) > self.settings.qs_console_buffer:
            self._queue.popleft()
            self._skipped += 1
        if self._feeder is None or self._feeder.done():
            self._feeder = asyncio.get_running_loop().create_task(self._feed(), name="qs-console-feed")

    async def _feed(self) -> None:
        while self._queue and not self.ended:
            if self._skipped:
                skipped, self._skipped = self._skipped, 0
                self.reply({"error": f"{skipped} console entries were skipped: this client reads too slowly",
                            "code": "entries_skipped", "skipped": skipped})
            while self._queue and self.mailbox.pending() < FEED_WINDOW:
                self.mailbox.put_reply(self._queue.popleft())
            if self._queue:
                await asyncio.sleep(FEED_POLL_S)

    async def end(self) -> None:
        self.hub.console_unlisten(self)
        if self._feeder is not None:
            self._feeder.cancel()
        await super().end()


def _line_text(entry: dict[str, Any]) -> str:
    """The Queue Server's own message shape, plus its number."""
    return json.dumps({"time": entry.get("time"), "msg": entry.get("msg", ""), "seq": entry["seq"]},
                      ensure_ascii=False)


def _state_payload(state: dict[str, Any]) -> dict[str, Any]:
    connected = bool(state.get("connected"))
    return {"console": "connected" if connected else "disconnected", "connected": connected,
            "source": state.get("source"), "message": state.get("message", "")}
