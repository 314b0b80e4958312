"""The load generator's pv-socket clients: subscribe, then count value messages and latency.

Value messages are recognised and their timestamp read without ``json.loads``: the client
side must cost as little CPU as possible, since it shares the machine's two cores with the
server it measures, and the big waveform's messages are megabytes of JSON.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SUBSCRIBE_CHUNK = 500  # the server's default OAS_MAX_NAMES_PER_REQUEST


def parse_value(text: str) -> tuple[str, float | None] | None:
    """``(pv, timestamp)`` of a pv-socket value message; None for anything else.

    A value message starts ``{"pv":"NAME","value":`` and carries ``"timestamp":T,``
    after the value; metadata and replies start differently.
    """
    if not text.startswith('{"pv":"'):
        return None
    end = text.find('"', 7)
    if end < 0 or not text.startswith(',"value":', end + 1):
        return None
    at = text.rfind(',"timestamp":')
    if at < 0:
        return None
    start = at + 13
    stop = text.find(",", start)
    raw = text[start:stop if stop >= 0 else len(text)].rstrip("}")
    return text[7:end], (None if raw == "null" else float(raw))


@dataclass
class Tally:
    """What all clients of one load generator saw; shared, as they run on one event loop."""

    measuring: bool = False
    latencies: array[float] = field(default_factory=lambda: array("d"))
    messages: int = 0
    null_timestamps: int = 0
    other: int = 0
    disconnected: int = 0


@dataclass
class Client:
    """One WebSocket subscribed to ``names``; counts what arrives while ``tally.measuring``."""

    index: int
    url: str
    names: list[str]
    tally: Tally
    compression: str | None = "deflate"
    ws: ClientConnection | None = None
    seen: set[str] = field(default_factory=set)
    summary: dict[str, Any] | None = None
    window_messages: int = 0
    per_pv: dict[str, int] = field(default_factory=dict)
    per_pv_latency: dict[str, list[float]] | None = None  # kept only when set to a dict
    close_code: int | None = None
    close_reason: str = ""
    error: str = ""
    task: asyncio.Task[None] | None = None

    async def start(self, **connect_kwargs: Any) -> None:
        """Connect, send the subscribe requests and start reading in a task."""
        self.ws = await connect(self.url, compression=self.compression, max_size=None,
                                open_timeout=30, **connect_kwargs)
        for at in range(0, len(self.names), SUBSCRIBE_CHUNK):
            chunk = self.names[at:at + SUBSCRIBE_CHUNK]
            await self.ws.send(json.dumps({"action": "subscribe", "pvs": chunk}))
        self.task = asyncio.create_task(self.read(), name=f"client-{self.index}")

    def ready(self) -> bool:
        """Every subscribed PV has delivered at least one value."""
        return len(self.seen) >= len(self.names)

    async def read(self) -> None:
        assert self.ws is not None
        tally = self.tally
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    message = message.decode()
                now = time.time()
                parsed = parse_value(message)
                if parsed is None:
                    if '"action":"subscribe"' in message[:200] and self.summary is None:
                        self.summary = json.loads(message)
                    elif tally.measuring:
                        tally.other += 1
                    continue
                pv, stamp = parsed
                if pv not in self.seen:
                    self.seen.add(pv)
                if not tally.measuring:
                    continue
                self.window_messages += 1
                self.per_pv[pv] = self.per_pv.get(pv, 0) + 1
                tally.messages += 1
                if stamp is None:
                    tally.null_timestamps += 1
                else:
                    tally.latencies.append(now - stamp)
                    if self.per_pv_latency is not None:
                        self.per_pv_latency.setdefault(pv, []).append(now - stamp)
                if '"connected":false' in message[-200:]:
                    tally.disconnected += 1
        except ConnectionClosed as exc:
            self._closed(exc)
        except Exception as exc:  # noqa: BLE001 - reported in the results, not raised
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            self._closed(None)

    def _closed(self, exc: ConnectionClosed | None) -> None:
        if exc is not None and exc.rcvd is not None:
            self.close_code, self.close_reason = exc.rcvd.code, exc.rcvd.reason
        elif self.ws is not None and self.ws.close_code is not None:
            self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason or ""

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()


async def prime(url: str, name: str, timeout: float = 15.0) -> None:
    """Subscribe one socket to one PV, wait for its first value, and close.

    Works around a server crash: the bridge opens channels on several executor threads at
    once, and pyepics initialises libca without a lock, so a fresh server whose first
    request names 10 or more PVs often dies with SIGSEGV in ca_attach_context (see
    README.md, "Server problems seen"). One PV first makes the initialisation single-threaded.
    """
    async with connect(url, open_timeout=timeout) as ws:
        await ws.send(json.dumps({"action": "subscribe", "pvs": [name]}))
        async with asyncio.timeout(timeout):
            while parse_value(str(await ws.recv())) is None:
                pass


def small_buffer_socket(host: str, port: int, rcvbuf: int) -> socket.socket:
    """A connected TCP socket with a small receive buffer, set before connect as it must be."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock
