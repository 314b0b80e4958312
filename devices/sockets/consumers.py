"""WebSocket consumers: accept, hand frames to a session, close. No protocol logic here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.conf import settings

from devices.access.db import DB_AUDIT, DB_RULES
from devices.access.guard import Guard
from devices.access.principal_cache import principal_cached
from devices.access.rules import Principal
from devices.access.selectors import principal_for, principal_now
from devices.access.settings import current_policy
from devices.core.mailbox import SendMany
from devices.metrics import instruments as metrics
from devices.services.runtime import get_hub
from devices.status.registry import SOCKETS, OpenSocket
from devices.status.snapshot import protocol_of_path
from ophydsite.logging_setup import log_context_bind
from qsconsole.interlock import current_interlock

from .device_session import DeviceSession
from .monitor_session import MonitorSession
from .pv_session import PvSession
from .session import Session

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]


class SessionConsumer(AsyncWebsocketConsumer):
    """Binds one socket to one session; updates reach it through the process hub."""

    # No per-socket channel-layer channel: the hub delivers (see ARCHITECTURE.md).
    channel_layer_alias = "__no_per_socket_channel__"
    session_class: type[Session] = PvSession

    session: Session | None = None
    socket_id = ""  # its id in logs and on the status page (devices/status)

    path_label = "pv-socket"

    async def connect(self) -> None:
        hub = await get_hub()
        guard = await self._guard()
        await self.accept()
        client = self.scope.get("client") or ("?", 0)
        self.socket_id = SOCKETS.new_id(self.path_label)
        # Every log record of this socket's task (and the tasks it starts) names it (OAS_LOG_FORMAT=json).
        log_context_bind(socket=self.socket_id, client=f"{client[0]}:{client[1]}", user=guard.principal.describe())
        self.session = self.session_class(hub=hub, settings=settings.OAS, send=self._send_text,
                                          close=self._close, guard=guard, client=f"{client[0]}:{client[1]}",
                                          interlock=current_interlock, send_many=self._server_send_texts())
        metrics.socket_opened(self.session, self.path_label)
        SOCKETS.add(OpenSocket(id=self.socket_id, path=self.path_label, protocol=protocol_of_path(self.path_label),
                               user=guard.principal.describe(), client=f"{client[0]}:{client[1]}",
                               session=self.session, close=self.close))

    async def _guard(self) -> Guard:
        """Who this socket is (session user or API token) and from where, fixed at connect."""
        user = self.scope.get("user")
        token = self.scope.get("api_token")
        principal = await database_sync_to_async(principal_for)(user, token)
        client = self.scope.get("client") or (None, 0)
        headers = dict(self.scope.get("headers") or [])
        user_id = getattr(user, "pk", None) if principal.username else None
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None) if token is None else None
        token_id = self.scope.get("api_token_id")

        async def load() -> Principal | None:
            return await database_sync_to_async(principal_now)(user_id=user_id, session_key=session_key,
                                                               token_id=token_id, token_label=token)

        async def refresh() -> Principal | None:
            if user_id is None:
                return principal  # anonymous stays anonymous
            return await principal_cached((user_id, session_key, token_id), user_id,
                                          settings.OAS.access_review_s / 2, load)

        return Guard(principal=principal, policy=current_policy(), rules=DB_RULES, audit=DB_AUDIT,
                     address=client[0], origin=headers.get(b"origin", b"").decode("latin-1"),
                     path=self.path_label, user_id=user_id, refresh=refresh)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is not None:
            await self.session.receive(text_data, bytes_data)  # type: ignore[attr-defined]

    async def disconnect(self, code: Any) -> None:
        SOCKETS.remove(self.socket_id)
        if self.session is not None:
            await self.session.end()
            metrics.socket_closed(self.session, code)

    @cached_property
    def _data(self) -> AsgiSend:
        """The ASGI send for data frames (found once; then a plain attribute)."""
        return _data_send(self.base_send)

    async def _send_text(self, text: str) -> None:
        await self._data({"type": "websocket.send", "text": text})

    def _server_send_texts(self) -> SendMany | None:
        """The server's ``send_texts`` (ophydsite/ws_protocol.py: several frames, one flow
        control wait) when the ASGI send beneath the wrappers belongs to it; else None."""
        send_texts: SendMany | None = getattr(getattr(self._data, "__self__", None), "send_texts", None)
        return send_texts

    async def _close(self, code: int) -> None:
        await self.close(code)


def _data_send(send: AsgiSend) -> AsgiSend:
    """The ASGI send beneath Channels' session wrapper, for data frames.

    The wrapper looks at the session on every message to decide whether to save it, which it
    only ever does for HTTP responses; for a stream of PV updates that look was a sixth of the
    loop (py-spy, docs/design.md). Accept and close still go through it.
    """
    owner = getattr(send, "__self__", None)
    while isinstance(owner, InstanceSessionWrapper):
        send = owner.real_send
        owner = getattr(send, "__self__", None)
    return send


class PvSocketConsumer(SessionConsumer):
    session_class = PvSession
    path_label = "pv-socket"


class MonitorConsumer(SessionConsumer):
    session_class = MonitorSession
    path_label = "monitor"


class DeviceSocketConsumer(SessionConsumer):
    session_class = DeviceSession
    path_label = "device-socket"
