"""Which bridge shard owns a name, and the command channel each shard reads.

With ``OAS_BRIDGE_SHARDS`` = N > 1, N bridges (``runbridge --shard I/N``) split the PVs and
devices between them by a stable hash of the owner key: a PV's own name, or the device of a
device topic (every signal of a device must live where its ophyd object streams). Servers
and bridges compute the same owner from the name alone, so nothing has to be looked up.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from .messages import BRIDGE_CHANNEL as SINGLE_CHANNEL  # one bridge: as before shards
from .topics import parse_device_topic


def owner_key(name: str) -> str:
    """What decides the owner of ``name``: the device of a device topic, else the name."""
    parsed = parse_device_topic(name)
    return parsed[0] if parsed is not None else name


def shard_of(name: str, count: int) -> int:
    """The shard (0 … count-1) owning ``name``; the same in every process and Python run
    (crc32 of the UTF-8 owner key, not ``hash()``, which is salted per process)."""
    return device_shard(owner_key(name), count)


def device_shard(device: str, count: int) -> int:
    """The shard owning every topic of ``device`` (a device name, not a topic)."""
    if count <= 1:
        return 0
    return zlib.crc32(device.encode()) % count


def bridge_channel(shard: int, count: int) -> str:
    """The command channel of shard ``shard`` of ``count``."""
    if count <= 1:
        return SINGLE_CHANNEL
    return f"{SINGLE_CHANNEL}.{shard}of{count}"


def split(names: Iterable[str], count: int) -> dict[int, list[str]]:
    """``names`` grouped by owning shard, in their order; shards owning none are left out."""
    out: dict[int, list[str]] = {}
    for name in names:
        out.setdefault(shard_of(name, count), []).append(name)
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)``; ValueError unless 0 ≤ I < N."""
    index, sep, count = text.partition("/")
    try:
        if not sep:
            raise ValueError
        i, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"expected I/N, e.g. 0/2, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return i, n
