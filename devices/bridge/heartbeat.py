"""The bridge's heartbeat in Redis (scaled mode), read by the servers' /readyz.

Each `runbridge` shard writes one key every few seconds with a time to live; a shard that
dies, hangs its event loop or loses Redis stops writing, the key expires, and the servers
report the bridge not ready. Redis's own clock expires the key, so the hosts' clocks need not
agree. The value also says whether the shard's startup load has finished.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class HeartbeatRedis(Protocol):
    """What the heartbeat needs of a redis.asyncio client."""

    async def set(self, name: str, value: str, px: int | None = None) -> Any: ...

    async def delete(self, *names: str) -> Any: ...

    async def mget(self, keys: list[str]) -> list[bytes | str | None]: ...


def heartbeat_key(prefix: str, shard: int) -> str:
    return f"{prefix}:bridge-heartbeat:{shard}"


def heartbeat_value(shard: tuple[int, int], loaded: bool) -> str:
    return json.dumps({"at": time.time(), "shard": list(shard), "loaded": loaded,
                       "host": socket.gethostname(), "pid": os.getpid()})


async def heartbeat_run(redis: HeartbeatRedis, *, prefix: str, shard: tuple[int, int],
                        loaded: Callable[[], bool], period_s: float, ttl_s: float) -> None:
    """Write the shard's heartbeat every ``period_s`` until cancelled, then remove it (a clean
    stop is seen at once, not after the TTL). Redis errors are logged once and retried."""
    key = heartbeat_key(prefix, shard[0])
    failing = False
    try:
        while True:
            try:
                await redis.set(key, heartbeat_value(shard, loaded()), px=max(int(ttl_s * 1000), 1))
                if failing:
                    log.info("bridge heartbeat written again (%s)", key)
                failing = False
            except Exception as exc:  # noqa: BLE001 - Redis away: servers see the key expire
                if not failing:
                    log.warning("bridge heartbeat %s not written: %s", key, exc)
                failing = True
            await asyncio.sleep(period_s)
    finally:
        try:
            await asyncio.wait_for(redis.delete(key), 1.0)
        except BaseException:  # noqa: BLE001 - best effort on the way out; the TTL covers it
            pass


def shard_problems(values: list[bytes | str | None], shards: int) -> tuple[list[str], list[str]]:
    """From the heartbeat values of shards 0..N-1: what is wrong with the bridge (no heartbeat,
    another shard count) and which shards have not finished their startup load."""
    bridge: list[str] = []
    loading: list[str] = []
    for index, raw in enumerate(values):
        if raw is None:
            bridge.append(f"shard {index}/{shards}: no heartbeat (not running, stuck, or cut off from Redis)")
            continue
        try:
            beat = json.loads(raw)
            count, loaded = int(beat["shard"][1]), bool(beat["loaded"])
        except (ValueError, KeyError, TypeError, IndexError):
            bridge.append(f"shard {index}/{shards}: unreadable heartbeat")
            continue
        if count != shards:
            bridge.append(f"shard {index} runs as one of {count}, this server expects OAS_BRIDGE_SHARDS={shards}")
        elif not loaded:
            loading.append(f"shard {index}/{shards}: startup files still loading")
    return bridge, loading


async def heartbeat_read(redis: HeartbeatRedis, *, prefix: str, shards: int) -> list[bytes | str | None]:
    """Every shard's heartbeat value (None where it has expired), in one round trip."""
    return list(await redis.mget([heartbeat_key(prefix, index) for index in range(shards)]))
