"""Which bridge shard each hub command goes to, and how the shards' replies are merged.

One bridge (``OAS_BRIDGE_SHARDS`` = 1) reads every command on the one channel it always
had. With N shards, interest and sets go to the shard owning the name (channel_layer/
shards.py), describes are split by device and their replies merged, a reload goes to every
shard (each holds the whole registry), and the Queue Server console to shard 0, which is
the only one reading it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devices.channel_layer import shards

CHUNK = 500  # names per interest message
_RANK = {"ok": 0, "partial": 1, "error": 2}


class Routes:
    """The command channels of a deployment of ``count`` bridge shards."""

    def __init__(self, count: int = 1) -> None:
        self.count = max(int(count), 1)
        self.channels = [shards.bridge_channel(i, self.count) for i in range(self.count)]
        self.console = self.channels[0]

    def owner(self, name: str) -> str:
        """The channel of the shard owning a PV or device topic."""
        return self.channels[shards.shard_of(name, self.count)]

    def interest(self, names: list[str]) -> list[tuple[str, list[str]]]:
        """``(channel, chunk)`` pairs carrying ``names`` to their owners, at most CHUNK each."""
        if self.count == 1:
            groups = {0: names}
        else:
            groups = shards.split(names, self.count)
        return [(self.channels[shard], part[i:i + CHUNK])
                for shard, part in sorted(groups.items()) for i in range(0, len(part), CHUNK)]

    def devices(self, devices: Iterable[str]) -> dict[str, list[str]]:
        """Device names grouped by the channel of the shard that streams them."""
        out: dict[str, list[str]] = {}
        for device in devices:
            out.setdefault(self.channels[shards.device_shard(device, self.count)], []).append(device)
        return out

    def label(self, channel: str) -> str:
        """How a shard is named in reports: ``bridge shard I/N``."""
        return f"bridge shard {self.channels.index(channel)}/{self.count}"


def merge_describe(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One describe answer from the shards' answers: every device's plan, the known names
    of all of them; the first error wins (its status and message)."""
    merged: dict[str, Any] = {"devices": {}, "known": []}
    known: set[str] = set()
    for reply in replies:
        if reply.get("status") in {"error", "bridge_unavailable"} and "status" not in merged:
            merged["status"], merged["error"] = reply["status"], reply.get("error")
        merged["devices"].update(reply.get("devices") or {})
        known.update(reply.get("known") or [])
    merged["known"] = sorted(known)
    return merged


def merge_reload(replies: dict[str, dict[str, Any] | None], routes: Routes) -> dict[str, Any] | None:
    """One reload report from each shard's (``None``: that shard did not answer). Every
    shard ran the same files, so the first report stands for them; the status is the worst,
    and a shard that did not answer is an error of the reload (``partial``). None if no
    shard answered."""
    if len(replies) == 1:  # one bridge: its report as it is
        return next(iter(replies.values()))
    got = {channel: r for channel, r in replies.items() if r is not None}
    if not got:
        return None
    merged = dict(next(iter(got.values())))
    errors = dict(merged.get("errors") or {})
    status = merged.get("status", "ok")
    for reply in got.values():
        errors.update(reply.get("errors") or {})
        if _RANK.get(reply.get("status", "ok"), 2) > _RANK.get(status, 2):
            status = reply.get("status", "error")
    for channel, reply in replies.items():
        if reply is None:
            errors[routes.label(channel)] = "did not answer; its devices were not reloaded"
            status = "error" if status == "error" else "partial"
    merged["status"], merged["errors"] = status, errors
    return merged
