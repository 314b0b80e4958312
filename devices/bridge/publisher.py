"""Sending bridge messages to the channel layer: PV updates per tick, one message per hub.

Entries never await the layer themselves: they leave the newest message for a key here and
one task sends. PV updates are not sent per PV to a group but collected for a tick and sent
as one ``pv.batch`` to each hub that leases the PV (a hub per server process), so the layer
carries a few hundred messages a second whatever the number of PVs (measured: a group send
per update cost the in-memory layer a scan of every group, see docs/design.md). A command's
reply flushes at once, with the updates before it (a set's new value stays ahead of its
"done"), so under a heavy set load flushes follow the set rate. A key that is
already waiting keeps its place and takes the newer message, so the backlog is bounded by the
number of PVs, never by the update rate. A hub on the publisher's own loop (embedded mode)
takes its batch as Python objects, without JSON or the layer (``channel_layer/local.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

import orjson

from devices.channel_layer import local
from devices.channel_layer import messages as m

log = logging.getLogger(__name__)

Key = tuple[str, ...]

# Updates due within this long of the previous flush go out together; an update after a
# quiet spell goes out at once.
TICK_S = 0.005


class Audience(Protocol):
    """Who wants a PV's updates: the hub channels holding a lease on it."""

    leases: dict[str, float]

    def meta_message(self) -> dict[str, Any]: ...

    def value_message(self) -> dict[str, Any]: ...


class Publisher:
    """Latest-wins outbox: PV updates batched per hub, other messages sent as they are."""

    def __init__(self, layer: Any, tick_s: float = TICK_S) -> None:
        self._layer = layer
        self._tick_s = tick_s
        self._updates: dict[Key, tuple[Audience, dict[str, Any]]] = {}
        self._snapshots: dict[tuple[str, str], Audience] = {}
        self._outbox: dict[Key, tuple[str, str, dict[str, Any]]] = {}
        self._ready = asyncio.Event()
        self._urgent = asyncio.Event()  # a reply is waiting: flush now, not at the tick
        self._last_flush = 0.0
        self.sent = 0  # PV updates and other messages handed to the layer
        self.batches = 0

    def to_audience(self, key: Key, audience: Audience, message: dict[str, Any]) -> None:
        """A PV update for every hub leasing the PV when the tick is sent."""
        self._updates[key] = (audience, message)
        self._ready.set()

    def snapshot(self, channel: str, name: str, audience: Audience) -> None:
        """The PV's state as it is at the next tick, to one hub that just joined."""
        self._snapshots[(channel, name)] = audience
        self._ready.set()

    def to_group(self, key: Key, group: str, message: dict[str, Any]) -> None:
        self._outbox[key] = ("group", group, message)
        self._ready.set()

    def to_channel(self, key: Key, channel: str, message: dict[str, Any]) -> None:
        """A message to one hub, such as a command's reply: it starts the next flush at once.
        Held for the tick, a set's reply capped one client at 200 sets/s (bench/setload.py)."""
        self._outbox[key] = ("channel", channel, message)
        self._ready.set()
        self._urgent.set()

    def pending(self) -> int:
        return len(self._outbox) + len(self._updates) + len(self._snapshots)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            wait = self._last_flush + self._tick_s - loop.time()
            if wait > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), wait)
            self._urgent.clear()
            self._ready.clear()
            self._last_flush = loop.time()
            await self._send_batches()
            await self._send_outbox()

    def _take_batches(self) -> dict[str, list[dict[str, Any]]]:
        """Every hub's updates of this tick: live updates first, then snapshots rendered now,
        so a snapshot is never older than an update the hub gets with it."""
        updates, self._updates = self._updates, {}
        snapshots, self._snapshots = self._snapshots, {}
        batches: dict[str, list[dict[str, Any]]] = {}
        for audience, message in updates.values():
            for hub in audience.leases:
                batches.setdefault(hub, []).append(message)
        for (hub, _), audience in snapshots.items():
            batches.setdefault(hub, []).extend((audience.meta_message(), audience.value_message()))
        return batches

    async def _send_batches(self) -> None:
        loop = asyncio.get_running_loop()
        for hub, messages in self._take_batches().items():
            receive = local.receiver(hub, loop)
            if receive is not None:
                try:
                    receive(messages)
                    self.sent += len(messages)
                    self.batches += 1
                except Exception:  # noqa: BLE001 - one hub's failure must not stop publishing
                    log.exception("handing %d updates to local hub %s failed", len(messages), hub)
                continue
            # One JSON text: cheap to copy in the in-memory layer, to pack for Redis, and
            # decoded once by the hub.
            try:
                text = orjson.dumps(messages, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY).decode()
                await self._layer.send(hub, {"type": m.PV_BATCH, "updates": text})
                self.sent += len(messages)
                self.batches += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a full or gone hub must not stop publishing
                log.warning("publishing %d updates to hub %s failed", len(messages), hub, exc_info=True)

    async def _send_outbox(self) -> None:
        while self._outbox:
            key = next(iter(self._outbox))
            how, target, message = self._outbox.pop(key)
            try:
                if how == "group":
                    await self._layer.group_send(target, message)
                else:
                    await self._layer.send(target, message)
                self.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one failed send must not stop publishing
                log.exception("publishing %s to %s failed", message.get("type"), target)


def _plain(value: Any) -> Any:
    """What orjson cannot encode itself (a numpy scalar of an odd type, bytes) as plain data."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)
