"""/livez and /readyz of real server processes, the bridge heartbeat in Redis, and JSON logs."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_check import redis_available
from tests.support.server import ServerProcess, free_tcp_port
from tests.system_tests.test_postgres import postgres_available

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

REDIS_DB = 12  # used by no other test


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(url: str, status: int, timeout: float) -> dict[str, Any]:
    """Poll until ``url`` answers ``status``; the last answer in the failure otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        got, body = get(url)
        if got == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} still {got} after {timeout} s: {body}")
        time.sleep(0.2)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ready.sqlite3'}"


def test_embedded_server_is_live_and_ready(sqlite_url):
    server = ServerProcess({"DATABASE_URL": sqlite_url}).start()
    try:
        assert get(f"{server.http}/livez") == (200, {"status": "ok"})
        body = wait_for(f"{server.http}/readyz", 200, 15)
        assert body["status"] == "ok" and body["failing"] == []
        assert set(body["checks"]) == {"database", "bridge", "startup"}  # no Redis in embedded mode
        assert all(check["ok"] and check["detail"] for check in body["checks"].values())
        assert body["checks"]["database"]["detail"].startswith("sqlite")
        assert get(f"{server.http}/api/v1/health")[1]["status"] == "ok"  # unchanged beside them
    finally:
        server.stop()


def _unreachable_databases() -> list[Any]:
    cases = [pytest.param(f"postgres://postgres@127.0.0.1:{free_tcp_port()}/ophydsite", id="nothing-listening")]
    missing = pytest.param(f"postgres://postgres@127.0.0.1:5432/no_such_db_{uuid.uuid4().hex[:8]}",
                           id="no-such-database",
                           marks=pytest.mark.skipif(not postgres_available(), reason="no PostgreSQL on 5432"))
    return [*cases, missing]


@pytest.mark.parametrize("database_url", _unreachable_databases())
def test_readiness_fails_naming_the_database(database_url):
    server = ServerProcess({"DATABASE_URL": database_url, "OAS_LOAD_DEVICES_ON_START": "false"})
    server.start_args = ["--no-migrate"]  # there is nothing to migrate into
    server.start()
    try:
        assert get(f"{server.http}/livez")[0] == 200  # alive: restarting would not help
        status, body = get(f"{server.http}/readyz")
        assert status == 503, body
        assert body["status"] == "unavailable" and body["failing"] == ["database"]
        assert not body["checks"]["database"]["ok"] and body["checks"]["database"]["detail"]
        assert body["checks"]["bridge"]["ok"]
    finally:
        server.stop()


def test_scaled_readiness_follows_the_bridge_heartbeat(sqlite_url):
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1:6379 is required when CI is set")
        pytest.skip("no Redis on 127.0.0.1:6379")
    env = {"DATABASE_URL": sqlite_url, "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
           "OAS_REDIS_PREFIX": f"ready{uuid.uuid4().hex[:8]}", "OAS_BRIDGE": "external",
           "OAS_BRIDGE_HEARTBEAT_S": "0.5", "OAS_BRIDGE_HEARTBEAT_TTL_S": "2"}
    server = ServerProcess(env).start()
    bridge = ServerProcess(env, command="runbridge")
    try:
        status, body = get(f"{server.http}/readyz")
        assert status == 503 and "bridge" in body["failing"], body
        assert body["checks"]["redis"]["ok"] and "no heartbeat" in body["checks"]["bridge"]["detail"]

        bridge.start()
        body = wait_for(f"{server.http}/readyz", 200, 20)
        assert set(body["checks"]) == {"database", "redis", "bridge", "startup"}
        assert body["checks"]["startup"]["detail"] == "devices loaded"

        bridge.stop()  # SIGTERM: no goodbye, the heartbeat has to go stale
        body = wait_for(f"{server.http}/readyz", 503, 10)
        assert "bridge" in body["failing"] and body["checks"]["redis"]["ok"], body
        assert get(f"{server.http}/livez")[0] == 200
    finally:
        bridge.stop()
        server.stop()


def test_json_logs_name_the_effective_settings_with_secrets_masked(sqlite_url, tmp_path):
    secret_key, api_key = "django-" + uuid.uuid4().hex, "qs-" + uuid.uuid4().hex
    server = ServerProcess({"DATABASE_URL": sqlite_url, "OAS_LOG_FORMAT": "json", "OAS_LOG_LEVEL": "INFO",
                            "DJANGO_SECRET_KEY": secret_key, "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": api_key,
                            "EPICS_CA_ADDR_LIST": "10.9.8.255 gw.example.org", "EPICS_CA_AUTO_ADDR_LIST": "NO",
                            "OAS_ALLOWED_ORIGINS": "https://portal.example.org", "OAS_AUTH_REQUIRED": "true"},
                           log_path=tmp_path / "server.log").start()
    try:
        get(f"{server.http}/readyz")
    finally:
        server.stop()
    text = (tmp_path / "server.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["logger"] == "uvicorn.access" and "/readyz" in line["message"] for line in lines)
    [effective] = [line["settings"] for line in lines if "settings" in line]
    assert effective["role"] == "server" and effective["OAS_PORT"] == server.port
    assert effective["EPICS_CA_ADDR_LIST"] == "10.9.8.255 gw.example.org"
    assert effective["EPICS_CA_AUTO_ADDR_LIST"] == "NO"
    assert effective["OAS_ALLOWED_ORIGINS"] == ["https://portal.example.org"]
    assert effective["OAS_AUTH_REQUIRED"] is True and effective["OAS_ANONYMOUS_WRITES"] is False
    assert effective["OAS_BRIDGE"] == "embedded" and effective["DATABASE_URL"] == sqlite_url
    assert effective["QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY"] == "***"
    assert effective["DJANGO_SECRET_KEY"] == "***"
    assert api_key not in text and secret_key not in text
