"""The camera WebSocket consumer: JSON text and binary JPEG frames through one session."""

from __future__ import annotations

from typing import Any

from devices.sockets import SessionConsumer

from .session import CameraSession


class CameraConsumer(SessionConsumer):
    session_class = CameraSession
    path_label = "camera-socket"

    async def _send_text(self, payload: Any) -> None:
        """Text, a frame, or a frame's description and the frame, in that order."""
        if isinstance(payload, tuple):
            for part in payload:
                await self._send_text(part)
        elif isinstance(payload, bytes):
            await self.base_send({"type": "websocket.send", "bytes": payload})
        else:
            await self.base_send({"type": "websocket.send", "text": payload})
