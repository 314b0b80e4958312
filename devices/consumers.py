"""WebSocket consumers: accept, hand frames to a session, close. No protocol logic here."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .device_session import DeviceSession
from .monitor_session import MonitorSession
from .pv_session import PvSession
from .runtime import get_hub
from .session import Session


class SessionConsumer(AsyncWebsocketConsumer):
    """Binds one socket to one session; updates reach it through the process hub."""

    # No per-socket channel-layer channel: the hub delivers (see ARCHITECTURE.md).
    channel_layer_alias = "__no_per_socket_channel__"
    session_class: type[Session] = PvSession

    session: Session | None = None

    async def connect(self) -> None:
        hub = await get_hub()
        await self.accept()
        client = self.scope.get("client") or ("?", 0)
        self.session = self.session_class(hub=hub, settings=settings.OAS, send=self._send_text,
                                          close=self._close, client=f"{client[0]}:{client[1]}")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is not None:
            await self.session.receive(text_data, bytes_data)  # type: ignore[attr-defined]

    async def disconnect(self, code: Any) -> None:
        if self.session is not None:
            await self.session.end()

    async def _send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close(self, code: int) -> None:
        await self.close(code)


class PvSocketConsumer(SessionConsumer):
    session_class = PvSession


class MonitorConsumer(SessionConsumer):
    session_class = MonitorSession


class DeviceSocketConsumer(SessionConsumer):
    session_class = DeviceSession
