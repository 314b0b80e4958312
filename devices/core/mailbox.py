"""Per-client delivery: a bounded latest-wins mailbox drained by one sender task.

PV data is kept as the newest text per key (PV and message kind), so a client that reads
slowly skips intermediate values instead of growing a queue, and after catching up holds
each PV's current value. Replies to requests are never dropped; they sit in a short FIFO
that is sent first. A client whose socket accepts nothing for ``stall_timeout`` seconds, or
that lets replies pile up past ``max_replies``, is reported stuck.

A client may ask for batches (``set_batch``): then PV data goes out at most once per window,
all of it pending in one text frame holding a JSON array, which costs a big display one frame
and one parse per window instead of one per update. A frame holds at most BATCH_MAX_CHARS;
the rest of the window's data follows at once in further frames. Replies are never batched
or delayed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from itertools import islice
from typing import Any

from devices.metrics.instruments import payload_size

# Text on the PV sockets; the camera socket also sends bytes, or (text, bytes) pairs that
# must arrive together (a frame's description, then the frame).
Payload = Any
Send = Callable[[Payload], Awaitable[None]]
SendMany = Callable[[list[str]], Awaitable[None]]
# Frames handed to ``send_many`` at once: bounds what one call puts past flow control.
BULK_MAX = 256
# Characters of texts in one batch frame: under the 1 MiB a websockets client accepts by
# default (its max_size); what does not fit goes in the next frame at once.
BATCH_MAX_CHARS = 1 << 20


class Mailbox:
    """The outgoing side of one WebSocket."""

    def __init__(self, send: Send, *, max_replies: int, stall_timeout: float,
                 on_stuck: Callable[[str], None], send_many: SendMany | None = None) -> None:
        """``send_many``, when the server offers it, writes several text frames with one flow
        control wait: a backlog of updates then costs one await, not one per frame."""
        self._send = send
        self._send_many = send_many
        self._latest: dict[Hashable, Payload] = {}
        self._replies: deque[Payload] = deque()
        self._max_replies = max_replies
        self._stall_timeout = stall_timeout
        self._on_stuck = on_stuck
        self._ready = asyncio.Event()
        self.closed = False
        self._sending_since: float | None = None  # loop time the send in progress began
        self._stalled = False
        self._window = 0.0  # batching window in seconds; 0 = one frame per message
        self._last_batch = float("-inf")  # loop time the previous batch frame began to go out
        self._owed = 0  # entries of the current window that did not fit its frames so far
        self._holding = False  # data waits for the window: only replies and close wake the sender
        self.sent = 0
        self.sent_bytes = 0  # characters of text frames, bytes of binary ones (metrics)
        self.replaced = 0

    def put_latest(self, key: Hashable, text: Payload) -> None:
        """Queue PV data; a message still waiting under the same key is replaced."""
        if self.closed:
            return
        if key in self._latest:
            self.replaced += 1
        self._latest[key] = text
        if not self._holding:
            self._ready.set()

    def put_reply(self, text: str) -> None:
        """Queue a reply that must arrive; too many unsent replies means the client is stuck."""
        if self.closed:
            return
        if len(self._replies) >= self._max_replies:
            self._stuck(f"more than {self._max_replies} replies unread")
            return
        self._replies.append(text)
        self._ready.set()

    def set_batch(self, window_s: float) -> None:
        """Send PV data as one JSON-array frame per ``window_s`` seconds (0: one frame each).

        Only for text payloads (the PV sockets): bytes and tuples are never joined.
        """
        self._window = max(0.0, float(window_s))
        self._owed = 0
        self._ready.set()  # a sender holding data for the old window looks again

    def drop(self, key_prefix: Hashable) -> None:
        """Forget waiting PV data whose key starts with ``key_prefix`` (after unsubscribe)."""
        for key in [k for k in self._latest if isinstance(k, tuple) and k[0] == key_prefix]:
            del self._latest[key]
        self._owed = min(self._owed, len(self._latest))

    def pending(self) -> int:
        return len(self._latest) + len(self._replies)

    def _next(self, loop: asyncio.AbstractEventLoop) -> Payload | None:
        """What to send now: a reply first, then data (in batch mode only once the window is
        over); None if nothing is due."""
        if self._replies:
            return self._replies.popleft()
        if not self._latest:
            return None
        if self._window <= 0:
            return self._latest.pop(next(iter(self._latest)))
        now = loop.time()  # only here: the unbatched path stays as cheap as it was
        if not self._owed and now < self._last_batch + self._window:
            return None
        texts = list(self._latest.values())
        if not all(isinstance(t, str) for t in texts):  # never joined: send one at a time
            return self._latest.pop(next(iter(self._latest)))
        if not self._owed:
            self._last_batch = now
        texts = self._take_batch(texts)
        # Each text is already one JSON object: joining them is the whole encoding.
        return "[" + ",".join(texts) + "]"

    def _take_batch(self, texts: list[str]) -> list[str]:
        """The waiting ``texts`` (in key order) that fit one frame of BATCH_MAX_CHARS, at least
        one; the rest, first in key order, is owed: the next frame goes at once."""
        latest = self._latest
        if len(texts) + 1 + sum(map(len, texts)) <= BATCH_MAX_CHARS:  # with commas and brackets
            latest.clear()
            self._owed = 0
            return texts
        size, count = 1, 0
        for text in texts:
            size += len(text) + 1
            if count and size > BATCH_MAX_CHARS:
                break
            count += 1
        for key in list(islice(latest, count)):
            del latest[key]
        # Only what waited when the window closed is owed (newer data waits for the next
        # window); it is first in key order, as a replaced value keeps its key's place.
        self._owed = len(latest) if not self._owed else min(len(latest), max(0, self._owed - count))
        return texts[:count]

    def _take_bulk(self) -> list[str] | None:
        """Up to BULK_MAX waiting texts in one go, when the sender can take several, no reply
        waits, no batch window applies and more than one is waiting; else None."""
        latest = self._latest
        if self._send_many is None or self._replies or self._window > 0 or len(latest) < 2:
            return None
        texts: list[str] = []
        for key in list(islice(latest, BULK_MAX)):
            text = latest[key]
            if type(text) is not str:  # bytes or a (text, bytes) pair: one at a time
                break
            texts.append(text)
            del latest[key]
        return texts or None

    async def _idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for something to send, or, while data waits for its window, for the window's
        end (a reply or close still wakes the sender at once; more data does not)."""
        self._ready.clear()
        if not (self._latest and self._window > 0):
            await self._ready.wait()
            return
        timer = loop.call_at(self._last_batch + self._window, self._ready.set)
        self._holding = True
        try:
            await self._ready.wait()
        finally:
            self._holding = False
            timer.cancel()

    def _stuck(self, why: str) -> None:
        if not self.closed:
            self.closed = True
            self._latest.clear()
            self._replies.clear()
            self._ready.set()
            self._on_stuck(why)

    def close(self) -> None:
        self.closed = True
        self._latest.clear()
        self._replies.clear()
        self._ready.set()

    async def run(self) -> None:
        """Send until closed; one send at a time, so the socket's flow control applies."""
        loop = asyncio.get_running_loop()
        runner = asyncio.current_task()
        watchdog = loop.create_task(self._watch(runner), name="mailbox-watchdog")
        try:
            while not self.closed:
                bulk = self._take_bulk()
                payload = self._next(loop) if bulk is None else None
                if bulk is None and payload is None:
                    await self._idle(loop)
                    continue
                self._sending_since = loop.time()
                try:
                    if bulk is not None:
                        await self._send_many(bulk)  # type: ignore[misc]
                        self.sent += len(bulk) - 1
                        self.sent_bytes += sum(map(len, bulk))
                    else:
                        await self._send(payload)
                        self.sent_bytes += payload_size(payload)
                except asyncio.CancelledError:
                    if self._stalled:
                        return  # the watchdog gave up on this socket
                    raise
                except Exception:  # noqa: BLE001 - the peer went away; the consumer cleans up
                    self.close()
                    return
                self._sending_since = None
                self.sent += 1
        finally:
            watchdog.cancel()

    async def _watch(self, runner: asyncio.Task[None] | None) -> None:
        """Close a client whose socket accepts nothing for ``stall_timeout`` seconds.

        One watchdog per mailbox rather than a timeout per send: ``asyncio.wait_for`` makes a
        task for every message, a large share of the cost of a small update.
        """
        loop = asyncio.get_running_loop()
        period = max(0.05, min(1.0, self._stall_timeout / 10))
        while not self.closed:
            await asyncio.sleep(period)
            since = self._sending_since
            if since is not None and loop.time() - since >= self._stall_timeout:
                self._stalled = True
                self._stuck(f"socket accepted nothing for {self._stall_timeout:g} s")
                if runner is not None:
                    runner.cancel()
                return
