"""What /readyz checks: the database, Redis (when used), the bridge, the startup load.

Each check has a short timeout and none blocks the event loop (the database is asked on a
thread of its own, Redis through its asyncio client): a probe must answer even while the
thing it checks hangs, and must never slow the sockets the loop serves.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from devices.bridge.heartbeat import heartbeat_read, shard_problems
from devices.services.runtime import embedded_bridge

CHECK_TIMEOUT_S = 2.0
EMBEDDED_TASK = "embedded-bridge"  # the task name devices/services/runtime.py gives the bridge


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


async def readiness() -> dict[str, Check]:
    """Every check of this process, by name; the ones that do not apply are left out."""
    redis_url: str | None = getattr(settings, "REDIS_URL", None)
    database, redis_checks = await asyncio.gather(_database(), _redis(redis_url) if redis_url else _nothing())
    checks = {"database": database, **redis_checks}
    if settings.OAS.bridge == "embedded":
        checks.update(_embedded_bridge())
    return checks


def readiness_answer(checks: dict[str, Check]) -> tuple[int, dict[str, Any]]:
    """HTTP status and body: 200 when every check passed, else 503 naming the failing ones."""
    failing = [name for name, check in checks.items() if not check.ok]
    body = {"status": "unavailable" if failing else "ok", "failing": failing,
            "checks": {name: asdict(check) for name, check in checks.items()}}
    return (503 if failing else 200), body


# --- the database: on one thread of its own --------------------------------------------------

# One thread: probes never pile up threads or connections; a probe arriving while a slow check
# runs waits for that one instead of starting another.
_db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness-db")
_db_check: asyncio.Future[str] | None = None


def _select_one() -> str:
    """``SELECT 1`` on this thread's connection, closed again (Django never cleans up a
    connection of a thread that is not its own)."""
    from django.db import connection

    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()
    return f"{connection.vendor}: SELECT 1 in {(time.monotonic() - started) * 1000:.0f} ms"


async def _database() -> Check:
    global _db_check
    loop = asyncio.get_running_loop()
    if _db_check is None or _db_check.done() or _db_check.get_loop() is not loop:
        _db_check = loop.run_in_executor(_db_thread, _select_one)
    try:
        return Check(True, await asyncio.wait_for(asyncio.shield(_db_check), CHECK_TIMEOUT_S))
    except TimeoutError:
        return Check(False, f"no answer within {CHECK_TIMEOUT_S:g} s")
    except Exception as exc:  # noqa: BLE001 - whatever the driver raised is the reason
        return Check(False, _reason(exc))


# --- Redis and the bridge's heartbeat ----------------------------------------------------------

async def _nothing() -> dict[str, Check]:
    return {}


async def _redis(url: str) -> dict[str, Check]:
    """PING, and in scaled mode every bridge shard's heartbeat, on one short-lived connection."""
    import redis.asyncio as aioredis

    external = settings.OAS.bridge == "external"
    client = aioredis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S + 0.5):
            started = time.monotonic()
            await client.ping()
            checks = {"redis": Check(True, f"PING in {(time.monotonic() - started) * 1000:.0f} ms")}
            if external:
                values = await heartbeat_read(client, prefix=redis_prefix(), shards=settings.OAS.bridge_shards)
                checks.update(_heartbeat_checks(values))
            return checks
    except Exception as exc:  # noqa: BLE001 - refused, timed out, authentication: all "not reachable"
        checks = {"redis": Check(False, _reason(exc))}
        if external:
            unknown = Check(False, "unknown: Redis, where the bridge's heartbeat is, does not answer")
            checks.update(bridge=unknown, startup=unknown)
        return checks
    finally:
        await client.aclose()


def redis_prefix() -> str:
    """The key prefix of this deployment (OAS_REDIS_PREFIX), as the channel layers use it."""
    return str(settings.CHANNEL_LAYERS["bridge"].get("CONFIG", {}).get("prefix", "ophydsite"))


def _heartbeat_checks(values: list[bytes | str | None]) -> dict[str, Check]:
    shards = settings.OAS.bridge_shards
    bridge, loading = shard_problems(values, shards)
    fresh = f"{shards} shard{'s' if shards > 1 else ''}: heartbeat fresh"
    return {
        "bridge": Check(not bridge, "; ".join(bridge) or fresh),
        "startup": Check(not bridge and not loading,
                         "; ".join(loading) or ("unknown: " + "; ".join(bridge) if bridge else "devices loaded")),
    }


# --- the embedded bridge ---------------------------------------------------------------------

def _embedded_bridge() -> dict[str, Check]:
    """The bridge task of this loop is alive, and its startup load has finished."""
    bridge = embedded_bridge()
    running = bridge is not None and bridge.started.is_set() and any(
        task.get_name() == EMBEDDED_TASK and not task.done() for task in asyncio.all_tasks())
    if bridge is None or not running:
        stopped = Check(False, "the embedded bridge is not running")
        return {"bridge": stopped, "startup": Check(False, "unknown: the embedded bridge is not running")}
    loaded = bridge.loaded
    return {"bridge": Check(True, f"embedded, {len(bridge.entries)} channels"),
            "startup": Check(loaded, "devices loaded" if loaded else "startup files still loading")}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"[:300]
