"""The database side of the guard: rules read through a short cache, audit rows."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.db import close_old_connections

from .models import AuditEntry
from .rules import Level, Rule
from .selectors import access_rules_load

RULE_CACHE_S = 2.0  # an edit in the admin applies within this long, without a restart
UNAVAILABLE = Rule("access-rules-unavailable", "*", Level.READ)

log = logging.getLogger(__name__)


class DbRules:
    """Enabled AccessRule rows; shared by every socket of a process.

    One read at a time: a subscribe of 2,000 PVs decides them together, and each decision
    finding the cache stale started a query of its own (py-spy: a quarter of the server's time
    in SQLite). Callers arriving while a read runs wait for that read.
    """

    def __init__(self) -> None:
        self._cached: tuple[float, tuple[Rule, ...]] | None = None
        self._reading: asyncio.Future[tuple[Rule, ...]] | None = None

    async def rules(self) -> tuple[Rule, ...]:
        if self._cached is not None and time.monotonic() - self._cached[0] < RULE_CACHE_S:
            return self._cached[1]
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        return await asyncio.shield(self._reading)

    async def _read(self) -> tuple[Rule, ...]:
        try:
            rules = await database_sync_to_async(access_rules_load)()
            self._cached = (time.monotonic(), rules)
            return rules
        except Exception:  # noqa: BLE001 - the database is away: fail safe, keep serving
            log.exception("reading the access rules failed")
            # The last rules known, or (never read) read-only for everybody: no write
            # happens under rules nobody could check. Asked again after the cache period.
            rules = self._cached[1] if self._cached is not None else (UNAVAILABLE,)
            self._cached = (time.monotonic(), rules)
            return rules
        finally:
            self._reading = None


T = TypeVar("T")


class DbAudit:
    """Audit rows, written on a thread (and database connection) of their own.

    Not on Channels' one thread for sync code: every socket's messages, rule reads and token
    checks queue there, and each hop through asgiref costs ~115 µs against ~40 µs for a plain
    executor (two hops per set). One thread keeps the writes in order and SQLite's writers
    apart.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def begin(self, record: dict[str, Any]) -> int:
        return await self._run(_insert, record)

    async def finish(self, key: int, changes: dict[str, Any]) -> None:
        await self._run(_update, key, changes)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="audit")
        return await asyncio.get_running_loop().run_in_executor(self._executor, _with_connection, call, *args)


def _with_connection(call: Callable[..., T], *args: Any) -> T:
    """``call`` with a usable connection, as channels' database_sync_to_async does: one the
    server closed, or older than CONN_MAX_AGE, is replaced before and dropped after."""
    close_old_connections()
    try:
        return call(*args)
    finally:
        close_old_connections()


def _insert(record: dict[str, Any]) -> int:
    return AuditEntry.objects.create(**record).pk


def _update(key: int, changes: dict[str, Any]) -> None:
    AuditEntry.objects.filter(pk=key).update(**changes)


DB_RULES = DbRules()
DB_AUDIT = DbAudit()
