"""The set path's audit guarantees, through a real server process: the pending row is committed
before the put (SQLite and PostgreSQL), and a set of the value a C IOC's record already holds
(no monitor follows it) is done and audited like any other.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import websockets

from tests.support.server import ServerProcess
from tests.support.typed_ioc import PREFIX

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCK_S = 1.5  # well below the guard's 5 s audit timeout, well above a put's round trip


def _postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path) -> Iterator[str]:
    """A fresh database of each kind, as DATABASE_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.sqlite3'}"
        return
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required when CI is set")
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    name = f"oas_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@contextmanager
def audit_table_locked(url: str) -> Iterator[None]:
    """No other connection can write an audit row while this is held (readers still can)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the database's write lock
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        conn.execute("LOCK TABLE devices_auditentry IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def audit_rows(url: str) -> list[tuple[Any, ...]]:
    sql = "SELECT outcome, value_requested, value_before, readback_after FROM devices_auditentry ORDER BY id"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(sql).fetchall()


async def read_until(conn: Any, where: Any, timeout: float = 10.0) -> dict[str, Any]:
    while not where(message := json.loads(await asyncio.wait_for(conn.recv(), timeout))):
        pass
    return message


async def collect(conn: Any, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            out.append(json.loads(await asyncio.wait_for(conn.recv(), left)))
        except TimeoutError:
            break
    return out


def value_of(pv: str) -> Any:
    return lambda m: m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"


async def test_the_put_waits_until_the_pending_audit_row_is_committed(ioc, database):
    pv = "TST:m2:sp"
    proc = ServerProcess({"DATABASE_URL": database, "OAS_ANONYMOUS_WRITES": "true"}).start()
    try:
        async with websockets.connect(f"{proc.ws}/api/v1/pv-socket") as conn:
            await conn.send(json.dumps({"action": "subscribe", "pv": pv}))
            target = (await read_until(conn, value_of(pv)))["value"] + 1.0
            with audit_table_locked(database):
                await conn.send(json.dumps({"action": "set", "pv": pv, "value": target, "id": 1}))
                meanwhile = await collect(conn, LOCK_S)
            assert not [m for m in meanwhile if m.get("id") == 1 or value_of(pv)(m) and m["value"] == target]
            seen: dict[str, dict[str, Any]] = {}  # the reply and the new value, in either order
            while len(seen) < 2:
                message = await read_until(conn, lambda m: m.get("id") == 1 or value_of(pv)(m) and m["value"] == target)
                seen["reply" if message.get("id") == 1 else "value"] = message
            assert seen["reply"]["status"] == "done", (seen, proc.output())
    finally:
        proc.stop()
    [(outcome, requested, _, after)] = audit_rows(database)
    assert (outcome, float(requested), float(after)) == ("done", target, target)


async def test_a_set_of_the_value_a_c_record_holds_is_done_and_audited(typed_ioc, tmp_path: Path):
    pv = PREFIX + "double"  # an ao record: no monitor when a put leaves its value unchanged
    database = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    proc = ServerProcess({"DATABASE_URL": database, "OAS_ANONYMOUS_WRITES": "true",
                          "EPICS_CA_ADDR_LIST": f"127.0.0.1:{typed_ioc}", "EPICS_CA_AUTO_ADDR_LIST": "NO"}).start()
    try:
        async with websockets.connect(f"{proc.ws}/api/v1/pv-socket") as conn:
            await conn.send(json.dumps({"action": "subscribe", "pv": pv}))
            await read_until(conn, value_of(pv))
            for ident, value in enumerate([3.5, 3.5, 4.25, 4.25], start=1):
                await conn.send(json.dumps({"action": "set", "pv": pv, "value": value, "id": ident}))
                reply = await read_until(conn, lambda m, i=ident: m.get("id") == i)
                assert reply["status"] == "done", (reply, proc.output())
    finally:
        proc.stop()
    # value_before is the value the client's server had (rate-capped): not compared here
    rows = [(outcome, float(requested), float(after)) for outcome, requested, _, after in audit_rows(database)]
    assert rows == [("done", 3.5, 3.5), ("done", 3.5, 3.5), ("done", 4.25, 4.25), ("done", 4.25, 4.25)]
