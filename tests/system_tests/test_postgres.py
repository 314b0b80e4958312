"""DATABASE_URL on PostgreSQL: the server migrates it and records the write audit there."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import psycopg
import pytest
import websockets

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_available() -> bool:
    try:
        with psycopg.connect(ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def database():
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required when CI is set")
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    name = f"oas_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def test_server_on_postgres_audits_writes(ioc, database):
    proc = ServerProcess({"DATABASE_URL": database, "OAS_ANONYMOUS_WRITES": "true"}).start()
    try:
        async with websockets.connect(f"{proc.ws}/api/v1/pv-socket") as conn:
            await conn.send(json.dumps({"action": "set", "pv": "TST:m3:sp", "value": 3.0, "id": 1}))
            while (reply := json.loads(await asyncio.wait_for(conn.recv(), 10))).get("id") != 1:
                pass
        assert reply["status"] == "done", (reply, proc.output())
    finally:
        proc.stop()
    with psycopg.connect(database.replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute("SELECT target, outcome, value_requested FROM devices_auditentry").fetchall()
    assert rows == [("TST:m3:sp", "done", "3.0")]
