"""uvicorn's sans-I/O WebSocket protocol, with a close that cannot hang on a stuck client
and one socket write per loop iteration instead of one per message.

uvicorn waits for the transport to drain before every send, the close frame included, so
closing a client that reads nothing waits forever and holds its buffers. Here a close waits
at most ``close_wait`` seconds for the client to drain; then the connection is aborted.
A client that resumes reading in time still receives the close frame and its code (1013).

uvicorn writes every frame to the socket at once: one system call per PV update, a fifth of
the server's time for one client watching 500 PVs (py-spy, docs/design.md). Data frames are
collected and written together when the loop finishes its current callbacks, so a mailbox
that sends many updates in one go makes one write; nothing waits longer than that.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from .ws_frames import text_frames

DEFLATE_LEVEL = 1


class BoundedCloseWebSocketProtocol(WebSocketsSansIOProtocol):
    close_wait = 10.0  # set from OAS_CLIENT_CLOSE_WAIT_S by `manage.py serve`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unwritten: list[bytes] = []
        if self.config.ws_per_message_deflate:
            # uvicorn's settings at deflate level 1 instead of zlib's 6: PV updates are many
            # ~120-byte frames; level 1 compresses one in 2.5 instead of 4.2 us, 5 % larger.
            self.conn.available_extensions = [ServerPerMessageDeflateFactory(
                server_max_window_bits=12, client_max_window_bits=12,
                compress_settings={"memLevel": 5, "level": DEFLATE_LEVEL})]

    async def send(self, message: Any) -> None:
        if message.get("type") == "websocket.send" and self._streaming():
            if not self.writable.is_set():  # flow control: the previous writes are taken by the kernel
                await self.writable.wait()  # (not awaited when set: a coroutine per message saved)
            data = message.get("bytes")
            if data is None:
                self._write_data([message.get("text", "")])
            else:
                self._write_data([], data)
            return
        self._write_unwritten()  # anything else goes after the frames before it
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

    async def send_texts(self, texts: list[str]) -> None:
        """Several data frames after one flow-control wait (the mailbox's backlog). Offered to
        the application through the ASGI send's owner (devices/sockets/consumers.py)."""
        if not self._streaming():
            for text in texts:  # not streaming (yet or any more): the plain path decides
                await self.send({"type": "websocket.send", "text": text})
            return
        if not self.writable.is_set():
            await self.writable.wait()
        self._write_data(texts)

    def _streaming(self) -> bool:
        """Data frames may go out: the handshake is done and no close was sent."""
        return self.handshake_complete and not self.close_sent and self.initial_response is None

    def _write_data(self, texts: list[str], binary: bytes | None = None) -> None:
        """Queue ``texts`` as text frames, or ``binary`` (when given) as one binary frame; the
        caller has waited for flow control. Not a coroutine: no second await per message."""
        if self.disconnected:
            raise ClientDisconnected()
        conn = self.conn
        if binary is None:
            frames = text_frames(conn, texts)
            if frames is not None:
                self._queue_write([frames])
                return
        try:
            if binary is not None:
                conn.send_binary(binary)
            else:
                for text in texts:
                    conn.send_text(text.encode())
        except InvalidState:  # the connection is closing
            raise ClientDisconnected() from None
        self._queue_write(conn.data_to_send())

    def _queue_write(self, frames: list[bytes]) -> None:
        """Written when the loop has run its current callbacks, with whatever else came."""
        if not self._unwritten:
            self.loop.call_soon(self._write_unwritten)
        self._unwritten.extend(frames)

    def _write_unwritten(self) -> None:
        frames, self._unwritten = self._unwritten, []
        if frames and not self.transport.is_closing():
            self.transport.write(b"".join(frames))
