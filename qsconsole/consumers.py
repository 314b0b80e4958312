"""The console WebSocket consumer: accept, start the session, hand frames to it."""

from __future__ import annotations

from urllib.parse import parse_qs

from devices.sockets import SessionConsumer

from .session import QsConsoleSession


class QsConsoleConsumer(SessionConsumer):
    session_class = QsConsoleSession
    path_label = "qs-console-socket"

    async def connect(self) -> None:
        await super().connect()
        query = parse_qs((self.scope.get("query_string") or b"").decode("latin-1"))
        raw = (query.get("after") or [""])[0]
        after = int(raw) if raw.isdigit() else None
        if self.session is not None:
            await self.session.start(after)  # type: ignore[attr-defined]
