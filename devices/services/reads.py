"""One-shot reads through the hub, for clients that hold no subscription (REST).

A read joins the topic like any socket would, takes the first value and metadata the bridge
sends (at once when the process already follows it), and leaves. The bridge keeps the
channel for its release grace, so repeated reads of one PV reuse one CA channel; nothing
here touches pyepics, so nothing waits on the event loop.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol

from devices.core.hub import Update


class ReadHub(Protocol):
    async def subscribe(self, client: Any, names: list[str]) -> None: ...

    async def unsubscribe(self, client: Any, names: list[str]) -> None: ...

    def current(self, name: str) -> list[Update]: ...


@dataclass(frozen=True)
class Reading:
    """What the bridge knows of one topic: a value (if any arrived) and its metadata."""

    name: str
    value: Any = None
    timestamp: float | None = None
    connected: bool = False
    severity: int | None = None
    meta: dict[str, Any] | None = None
    has_value: bool = False

    def as_read(self) -> dict[str, Any]:
        """ophyd's ``read()`` entry, plus connection and alarm state."""
        return {"value": self.value, "timestamp": self.timestamp, "connected": self.connected,
                "severity": self.severity}

    def describe(self) -> dict[str, Any]:
        """An ophyd ``describe()``-like entry from the metadata the bridge sent."""
        meta = self.meta or {}
        keep = ("dtype", "shape", "units", "precision", "lower_ctrl_limit", "upper_ctrl_limit", "enum_strs",
                "read_access", "write_access")
        entry = {k: meta[k] for k in keep if k in meta}
        entry["source"] = meta.get("source") or f"PV:{self.name}"
        return entry


class _Reader:
    """A hub client that only waits for the first value of each topic."""

    def __init__(self, names: list[str]) -> None:
        self.valued = {n: asyncio.Event() for n in names}

    def deliver(self, pv: str, update: Update) -> None:
        if update.kind == "value":
            event = self.valued.get(pv)
            if event is not None:
                event.set()


def reading_of(name: str, updates: list[Update]) -> Reading:
    """A Reading from the hub's state of one topic."""
    value_msg = next((u.msg for u in updates if u.kind == "value"), None)
    meta_msg = next((u.msg for u in updates if u.kind == "meta"), None)
    meta = dict(meta_msg["meta"]) if meta_msg is not None else None
    if value_msg is None:
        return Reading(name, connected=bool(meta and meta.get("connected")), meta=meta)
    return Reading(name, value=json.loads(value_msg["value"]), timestamp=value_msg.get("timestamp"),
                   connected=bool(value_msg.get("connected")), severity=value_msg.get("severity"), meta=meta,
                   has_value=True)


async def read_now(hub: ReadHub, names: list[str], timeout: float) -> dict[str, Reading]:
    """The current reading of each topic, waiting up to ``timeout`` for first values."""
    names = list(dict.fromkeys(names))
    reader = _Reader(names)
    await hub.subscribe(reader, names)
    try:
        waits = [asyncio.create_task(e.wait()) for e in reader.valued.values()]
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for task in pending:
            task.cancel()
        return {n: reading_of(n, hub.current(n)) for n in names}
    finally:
        await hub.unsubscribe(reader, names)


class Holder:
    """PVs the REST API keeps subscribed (``POST /pvs/{pv}``), so reads of them are instant
    and ``GET /pvs`` lists them. Per server process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.names: set[str] = set()

    def deliver(self, pv: str, update: Update) -> None:
        """The hub keeps the state; nothing to do per update."""

    async def hold(self, hub: ReadHub, name: str) -> None:
        if name in self.names:
            return
        if len(self.names) >= self.limit:
            raise OverflowError(f"The REST API already holds {self.limit} PVs; release some first (DELETE)")
        self.names.add(name)
        await hub.subscribe(self, [name])

    async def release(self, hub: ReadHub, name: str) -> bool:
        if name not in self.names:
            return False
        self.names.discard(name)
        await hub.unsubscribe(self, [name])
        return True
