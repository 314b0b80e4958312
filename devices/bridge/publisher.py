"""Sending bridge messages to the channel layer, latest first-come per key.

Entries never await the layer themselves: they drop the newest message for a key here and
one task sends them in order. A key that is already waiting keeps its place and takes the
newer message, so the backlog is bounded by the number of PVs, never by the update rate.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, ...]


class Publisher:
    """Latest-wins outbox for group sends and direct sends to hub channels."""

    def __init__(self, layer: Any) -> None:
        self._layer = layer
        self._outbox: dict[Key, tuple[str, str, dict[str, Any]]] = {}
        self._ready = asyncio.Event()
        self.sent = 0

    def to_group(self, key: Key, group: str, message: dict[str, Any]) -> None:
        self._outbox[key] = ("group", group, message)
        self._ready.set()

    def to_channel(self, key: Key, channel: str, message: dict[str, Any]) -> None:
        self._outbox[key] = ("channel", channel, message)
        self._ready.set()

    def pending(self) -> int:
        return len(self._outbox)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
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
            self._ready.clear()
