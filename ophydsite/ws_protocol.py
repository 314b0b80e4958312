"""uvicorn's sans-I/O WebSocket protocol, with a close that cannot hang on a stuck client.

uvicorn waits for the transport to drain before every send, the close frame included, so
closing a client that reads nothing waits forever and holds its buffers. Here a close waits
at most ``close_wait`` seconds for the client to drain; then the connection is aborted.
A client that resumes reading in time still receives the close frame and its code (1013).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class BoundedCloseWebSocketProtocol(WebSocketsSansIOProtocol):
    close_wait = 10.0  # set from OAS_CLIENT_CLOSE_WAIT_S by `manage.py serve`

    async def send(self, message: Any) -> None:
        if message.get("type") == "websocket.close" and self.handshake_complete and not self.writable.is_set():
            try:
                await asyncio.wait_for(self.writable.wait(), self.close_wait)
            except TimeoutError:
                sock = self.transport.get_extra_info("socket")
                if sock is not None:  # RST: the kernel drops the unsent buffer too (no FIN_WAIT1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.transport.abort()  # connection_lost follows: the app sees a disconnect
                raise ClientDisconnected() from None
        await super().send(message)
