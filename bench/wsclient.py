"""The load generator's clients: subscribe, then count value messages and latency.

``Client`` follows M PVs on the pv-socket; ``Follower`` follows one stream (a device's signal
on the device socket, or one PV) and keeps each value it gets, for bench/deviceload.py.

Value messages are recognised and their timestamp read without ``json.loads``: the client
side must cost as little CPU as possible, since it shares the machine's two cores with the
server it measures, and the big waveform's messages are megabytes of JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
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


def parse_stream_value(text: str) -> tuple[str, str, float | None] | None:
    """``(stream, value JSON, timestamp)`` of a pv-socket or device-socket value message.

    ``stream`` is the PV, or for the device socket the message's ``signal``; None for anything
    else (metadata, replies). Both shapes put the value first and a timestamp right after it,
    and nothing after the timestamp holds free text.
    """
    if text.startswith('{"pv":"'):
        head = 7
    elif text.startswith('{"device":"'):
        head = 11
    else:
        return None
    end = text.find('"', head)
    if end < 0 or not text.startswith(',"value":', end + 1):
        return None
    at = text.rfind(',"timestamp":')
    if at < end:
        return None
    stop = text.find(",", at + 13)
    raw = text[at + 13:stop if stop >= 0 else len(text)].rstrip("}")
    stamp = None if raw == "null" else float(raw)
    value = text[end + 10:at]
    if head == 7:
        return text[7:end], value, stamp
    sig = text.rfind(',"signal":"')
    if sig < at:
        return None
    return text[sig + 11:text.find('"', sig + 11)], value, stamp


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


@dataclass
class Follower(Client):
    """One socket sending one subscribe ``request`` and following stream ``names[0]``.

    While ``tally.measuring`` it keeps every value of that stream (receive time, message
    timestamp, value as a float) and counts the other messages by kind (other signals of the
    device, metadata). ``ready`` once the stream has delivered a value.
    """

    request: dict[str, Any] = field(default_factory=dict)
    received: array[float] = field(default_factory=lambda: array("d"))
    stamps: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    other_kinds: dict[str, int] = field(default_factory=dict)

    async def start(self, **connect_kwargs: Any) -> None:
        self.ws = await connect(self.url, compression=self.compression, max_size=None,
                                open_timeout=30, **connect_kwargs)
        await self.ws.send(json.dumps(self.request))
        self.task = asyncio.create_task(self.read(), name=f"follower-{self.index}")

    def clear(self) -> None:
        """Forget what the window so far kept (at the start of a measurement)."""
        for kept in (self.received, self.stamps, self.values):
            del kept[:]
        self.other_kinds.clear()
        self.window_messages = 0

    async def read(self) -> None:
        assert self.ws is not None
        stream, tally = self.names[0], self.tally
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    message = message.decode()
                now = time.time()
                parsed = parse_stream_value(message)
                if parsed is None or parsed[0] != stream:
                    if self.summary is None and '"action":"subscribe"' in message[:200]:
                        self.summary = json.loads(message)
                    elif tally.measuring:
                        kind = "meta" if '"sub_type":"meta"' in message else (
                            parsed[0] if parsed is not None else "other")
                        self.other_kinds[kind] = self.other_kinds.get(kind, 0) + 1
                    continue
                self.seen.add(stream)
                if not tally.measuring:
                    continue
                _, value, stamp = parsed
                self.window_messages += 1
                tally.messages += 1
                self.received.append(now)
                self.stamps.append(math.nan if stamp is None else stamp)
                try:
                    self.values.append(float(value))
                except ValueError:  # null (a non-finite value) or not a number
                    self.values.append(math.nan)
                if '"connected":false' in message:
                    tally.disconnected += 1
        except ConnectionClosed as exc:
            self._closed(exc)
        except Exception as exc:  # noqa: BLE001 - reported in the results, not raised
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            self._closed(None)


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
