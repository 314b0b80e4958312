"""One process's live state as plain dicts (JSON and msgpack safe), bounded in size.

Built from the objects that already count things (sockets' mailboxes, the hub, the bridge,
the camera feeds): nothing is counted twice. Rates (updates/s, fps) are the change of a
counter since the previous snapshot of this process, so they need two snapshots; the first
reports ``None``.
"""

from __future__ import annotations

import os
import socket as _socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from devices.metrics.instruments import PROTOCOLS, protocol_of

from .registry import OpenSocket

# Names listed per socket and PVs (or lease entries) listed per process unless asked otherwise;
# counts are always complete. A socket of 2,000 PVs would otherwise make every answer huge.
MAX_NAMES = 50
MAX_PVS = 500
# A rate over less than this is mostly noise: the previous rate is kept instead.
MIN_RATE_WINDOW_S = 0.5


@dataclass(frozen=True)
class Limits:
    """How much of each list a snapshot carries (the counts are always complete)."""

    max_names: int = MAX_NAMES
    max_pvs: int = MAX_PVS


class HubLike(Protocol):
    channel: str

    def held(self) -> list[tuple[str, int, int, dict[str, Any] | None]]: ...


class Rates:
    """Counters turned into per-second rates between two snapshots, per key."""

    def __init__(self) -> None:
        self._last: dict[Any, tuple[float, int, float | None]] = {}  # key -> (time, count, rate)

    def rate(self, key: Any, count: int, now: float) -> float | None:
        last = self._last.get(key)
        if last is None or count < last[1]:
            self._last[key] = (now, count, None)
            return None
        then, before, previous = last
        if now - then < MIN_RATE_WINDOW_S:
            return previous
        value = round((count - before) / (now - then), 2)
        self._last[key] = (now, count, value)
        return value

    def keep_only(self, keys: Iterable[Any]) -> None:
        """Forget keys no longer present (released PVs, closed feeds), so this stays bounded."""
        wanted = set(keys)
        for key in [k for k in self._last if k not in wanted]:
            del self._last[key]


def process_id() -> str:
    """How the status page names this process: host and pid (stable while it runs)."""
    return f"{_socket.gethostname()}:{os.getpid()}"


def socket_entry(sock: OpenSocket, limits: Limits) -> dict[str, Any]:
    session = sock.session
    names = _targets(session)
    mailbox = getattr(session, "mailbox", None)
    return {
        "id": sock.id, "path": sock.path, "protocol": sock.protocol, "user": sock.user, "client": sock.client,
        "since": sock.since, "subscriptions": len(names), "targets": names[:limits.max_names],
        "targets_truncated": len(names) > limits.max_names,
        "messages_sent": getattr(mailbox, "sent", 0), "bytes_sent": getattr(mailbox, "sent_bytes", 0),
        "replaced": getattr(mailbox, "replaced", 0), "pending": mailbox.pending() if mailbox is not None else 0,
    }


def _targets(session: Any) -> list[str]:
    """What a socket follows, as its client spells it (a camera socket: its camera)."""
    targets = getattr(session, "status_targets", None)
    if targets is not None:
        return list(targets())
    return list(getattr(session, "subscribed", ()))


def pv_entries(hubs: Iterable[HubLike], rates: Rates, now: float, limits: Limits,
               keys: list[Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every PV or device topic the hubs hold, most clients first; and how many there are.
    ``keys`` collects the rate keys in use."""
    out: list[dict[str, Any]] = []
    for hub in hubs:
        for name, clients, updates, value in hub.held():
            if keys is not None:
                keys.append(("pv", name))
            out.append({
                "name": name, "protocol": protocol_of(name), "clients": clients, "updates": updates,
                "updates_per_s": rates.rate(("pv", name), updates, now),
                "connected": bool(value.get("connected")) if value is not None else False,
                "last_update": value.get("timestamp") if value is not None else None,
            })
    out.sort(key=lambda e: (-e["clients"], e["name"]))
    return out[:limits.max_pvs], len(out)


def camera_entries(stats: dict[str, dict[str, Any]], rates: Rates, now: float) -> list[dict[str, Any]]:
    """Each camera feed (camera.cameras.camera_stats) with its frame and encode rates."""
    out = []
    for key, feed in sorted(stats.items()):
        encoded = sum(int(n) for n in (feed.get("encoded") or {}).values())
        frames = int(feed.get("frames_in", 0))
        out.append({"camera": key, "viewers": feed.get("viewers", 0), "frames_in": frames,
                    "fps": rates.rate(("camera-in", key), frames, now), "encoded": encoded,
                    "encodes_per_s": rates.rate(("camera-enc", key), encoded, now),
                    "skipped": feed.get("skipped", 0), "errors": feed.get("errors", 0)})
    return out


def bridge_entry(bridge: Any, upstream: int, rates: Rates, now: float, limits: Limits) -> dict[str, Any]:
    """A bridge (shard): its channels by state, update rate and lease table (capped)."""
    states = {"connected": 0, "disconnected": 0, "connecting": 0}
    by_protocol: dict[str, int] = {}
    leases: list[dict[str, Any]] = []
    total = 0
    clock = time.monotonic()
    for name, entry in list(bridge.entries.items()):
        state = "connected" if entry.connected else "disconnected" if entry.ever_connected else "connecting"
        states[state] += 1
        protocol = protocol_of(name)
        by_protocol[protocol] = by_protocol.get(protocol, 0) + 1
        total += len(entry.leases)
        leases.append({"pv": name, "protocol": protocol, "state": state,
                       "hubs": {hub: round(expiry - clock, 1) for hub, expiry in entry.leases.items()}})
    leases.sort(key=lambda e: (-len(e["hubs"]), e["pv"]))
    published = int(getattr(bridge.publisher, "sent", 0))
    return {
        "shard": bridge.shard, "shards": bridge.shards, "channels": len(bridge.entries), "states": states,
        "protocols": by_protocol, "upstream_updates": upstream,
        "updates_per_s": rates.rate(("bridge-upstream", bridge.shard), upstream, now),
        "published": published, "published_per_s": rates.rate(("bridge-published", bridge.shard), published, now),
        "leases_total": total, "leases": leases[:limits.max_pvs], "leases_truncated": len(leases) > limits.max_pvs,
    }


def console_entry(bridge: Any) -> dict[str, Any] | None:
    """The Queue Server console source as the bridge (shard 0) reads it."""
    relay = getattr(bridge, "console", None)
    if relay is None or bridge.shard != 0:
        return None
    state = dict(relay.state)
    return {"connected": bool(state.get("connected")), "source": state.get("source"),
            "message": state.get("message", ""), "reading": getattr(relay, "_reader", None) is not None,
            "last_seq": getattr(relay.log, "last_seq", None)}


def process_snapshot(*, process: str, started: float, sockets: list[OpenSocket], hubs: list[HubLike],
                     bridges: list[Any], cameras: dict[str, dict[str, Any]], upstream: int, rates: Rates,
                     limits: Limits, now: float | None = None) -> dict[str, Any]:
    """What the status page shows of one process."""
    now = time.monotonic() if now is None else now
    keys: list[Any] = []
    pvs, pv_count = pv_entries(hubs, rates, now, limits, keys)
    role = "+".join(r for r, has in (("server", hubs), ("bridge", bridges)) if has) or "idle"
    snapshot = {
        "process": process, "role": role, "host": process.rsplit(":", 1)[0], "pid": os.getpid(),
        "started": started, "at": time.time(), "hub_channels": [h.channel for h in hubs],
        "sockets": [socket_entry(s, limits) for s in sorted(sockets, key=lambda s: s.since)],
        "pvs": pvs, "pvs_count": pv_count, "cameras": camera_entries(cameras, rates, now),
        "bridges": [bridge_entry(b, upstream, rates, now, limits) for b in bridges],
        "console": next((c for c in map(console_entry, bridges) if c is not None), None),
    }
    rates.keep_only(_rate_keys(snapshot, keys))
    return snapshot


def _rate_keys(snapshot: dict[str, Any], keys: list[Any]) -> list[Any]:
    for cam in snapshot["cameras"]:
        keys += [("camera-in", cam["camera"]), ("camera-enc", cam["camera"])]
    for bridge in snapshot["bridges"]:
        keys += [("bridge-upstream", bridge["shard"]), ("bridge-published", bridge["shard"])]
    return keys


def protocol_of_path(path: str) -> str:
    """The protocol label of a consumer's path label (the metrics' bounded names)."""
    return PROTOCOLS.get(path, "other")
