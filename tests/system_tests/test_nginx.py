"""The deployment of deploy/: a real nginx running deploy/nginx/ophydsite.conf over TLS in front of
two server processes and the bridge on Redis and PostgreSQL (scaled mode, as in production).

Clients reach nginx from other loopback addresses (127.0.0.2 ...) than the one nginx reaches
the servers from (127.0.0.1, the trusted proxy), so the address the audit records is the
client's only if nginx passed it on and the server believed it. One socket is opened first and
left idle while the other tests run; its test runs last in the session (marker run_last), so
its 2 minutes pass while the rest of the suite runs, and checks it still works.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis
import websockets
import websockets.sync.client

from tests.support.child import PROJECT_ROOT
from tests.support.nginx import HOST, NginxProcess, SitePorts, nginx_path
from tests.support.server import ServerProcess, free_tcp_port
from tests.support.wsclient import read_until, reply, value_of

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
IDLE_S = 120.0
PV = "TST:m1:sp"
DEVICES = "from ophyd import EpicsSignal\nnginx_sig = EpicsSignal('TST:m2:sp', name='nginx_sig')\n"
USER, PASSWORD = "operator", "op-pass-nginx-1"


@dataclass
class Site:
    nginx: NginxProcess
    servers: list[ServerProcess]
    bridge: ServerProcess
    database: str
    tls: ssl.SSLContext

    @property
    def origin(self) -> str:
        return f"https://{HOST}:{self.nginx.ports.https}"

    def url(self, path: str) -> str:
        return f"wss://{HOST}:{self.nginx.ports.https}{path}"


def _need(available: bool, what: str) -> None:
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required when CI is set")
        pytest.skip(f"no {what}")


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _postgres_up() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def stack(ioc, tmp_path_factory) -> Iterator[Site]:
    """nginx, the bridge and two servers on a fresh PostgreSQL database and a Redis prefix of
    their own (both removed afterwards). Session-wide: the idle socket's test runs last."""
    _need(_redis_up(), "Redis on 127.0.0.1:6379")
    _need(_postgres_up(), "PostgreSQL on 127.0.0.1:5432")
    _need(nginx_path() is not None, "nginx (Debian's package could not be installed)")
    name, prefix = f"oas_test_{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    database = f"postgres://postgres@127.0.0.1:5432/{name}"
    startup = tmp_path_factory.mktemp("startup") / "devices.py"
    startup.write_text(DEVICES)
    bridge_metrics = free_tcp_port()
    env = {"REDIS_URL": REDIS, "OAS_REDIS_PREFIX": prefix, "OAS_BRIDGE": "external", "DATABASE_URL": database,
           "OAS_STARTUP_DIR": str(startup), "DJANGO_ALLOWED_HOSTS": f"{HOST},127.0.0.1",
           "OAS_BRIDGE_METRICS_PORT": str(bridge_metrics)}  # OAS_TRUSTED_PROXIES: its default, 127.0.0.1
    bridge = ServerProcess(env, command="runbridge")
    servers = [ServerProcess({**env, "OAS_LOAD_DEVICES_ON_START": "false"}) for _ in range(2)]
    ports = SitePorts(http=free_tcp_port(), https=free_tcp_port(), internal=free_tcp_port(),
                      servers=(servers[0].port, servers[1].port), bridge_metrics=bridge_metrics)
    nginx: NginxProcess | None = None
    try:
        nginx = NginxProcess(tmp_path_factory.mktemp("nginx"), ports)
        bridge.start()  # migrates
        subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", USER,
                        "--email", "operator@example.org"], cwd=PROJECT_ROOT, check=True, capture_output=True,
                       env={**os.environ, **env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}, timeout=60)
        for server in servers:
            server.start()
        nginx.start()
        yield Site(nginx, servers, bridge, database, ssl.create_default_context(cafile=str(nginx.cert)))
    finally:
        for proc in [nginx, *servers, bridge]:
            if proc is not None:
                proc.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        keys = redis.Redis.from_url(REDIS)
        for key in keys.scan_iter(f"{prefix}*"):
            keys.delete(key)


@dataclass
class IdleSocket:
    conn: websockets.sync.client.ClientConnection
    opened: float


@pytest.fixture(scope="session")
def idle_socket(stack: Site) -> Iterator[IdleSocket]:
    """A pv-socket through nginx that nothing is sent on. The sync client answers the servers'
    pings from a thread of its own, as a browser does, whether or not a test's loop runs; it
    sends no pings itself (browsers do not)."""
    sock = _tcp(stack.nginx.ports.https, "127.0.0.4")
    with websockets.sync.client.connect(stack.url("/api/v1/pv-socket"), sock=sock, ssl=stack.tls,
                                        server_hostname=HOST, ping_interval=None) as conn:
        yield IdleSocket(conn, time.monotonic())


@pytest.fixture
def site(stack: Site, idle_socket: IdleSocket) -> Site:
    """The stack, with the idle socket opened before the test that asks first."""
    return stack


def _tcp(port: int, source: str) -> socket.socket:
    """A connection to nginx on 127.0.0.1 from the loopback address ``source``."""
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


class _Https(http.client.HTTPSConnection):
    """HTTPS to the test nginx as https://HOST:port/ (SNI, certificate, Host), from ``source``."""

    def __init__(self, port: int, source: str, context: ssl.SSLContext) -> None:
        super().__init__(HOST, port, context=context, timeout=15)
        self.source = source

    def connect(self) -> None:
        self.sock = self._context.wrap_socket(_tcp(self.port, self.source), server_hostname=self.host)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def _request(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes | None = None) -> Answer:
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def https(site: Site, method: str, path: str, source: str = "127.0.0.2", **kwargs: Any) -> Answer:
    return _request(_Https(site.nginx.ports.https, source, site.tls), method, path, **kwargs)


def plain(port: int, path: str, source: str = "127.0.0.2", host: str | None = None) -> Answer:
    """GET over plain HTTP (the redirecting block, the internal block, a server itself)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    return _request(conn, "GET", path, headers={"Host": host} if host else None)


def cookies(answer: Answer) -> dict[str, str]:
    found = {}
    for header in answer.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def post_login(site: Site, origin: str) -> Answer:
    """The login form fetched and posted through nginx as a browser on ``origin`` does."""
    form = https(site, "GET", "/accounts/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body).group(1).decode()
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": USER, "password": PASSWORD}).encode()
    headers = {"Cookie": f"csrftoken={cookies(form)['csrftoken']}", "Origin": origin,
               "Referer": origin + "/accounts/login/", "Content-Type": "application/x-www-form-urlencoded"}
    return https(site, "POST", "/accounts/login/", headers=headers, body=body)


def log_in(site: Site) -> str:
    """Log in through nginx; the session cookie."""
    answer = post_login(site, site.origin)
    assert answer.status == 302, (answer.status, answer.body[:500])
    return cookies(answer)["sessionid"]


async def ws(site: Site, path: str, source: str = "127.0.0.2", **kwargs: Any) -> Any:
    sock = await asyncio.to_thread(_tcp, site.nginx.ports.https, source)
    return await websockets.connect(site.url(path), sock=sock, ssl=site.tls, server_hostname=HOST, **kwargs)


def audit_rows(site: Site, client: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(site.database.replace("postgres://", "postgresql://")) as conn:
        return conn.execute("SELECT username, client, path, target, outcome FROM devices_auditentry "
                            "WHERE client = %s ORDER BY id", (client,)).fetchall()


async def test_pages_and_static_files(site):
    for path, text in [("/", b"<html"), ("/console/pvs", b"<html"), ("/accounts/login/", b"csrfmiddlewaretoken"),
                       ("/static/ophydsite/ophydsite.js", b"OphydSite"), ("/api/v1/health", b'"status": "ok"')]:
        answer = await asyncio.to_thread(https, site, "GET", path)
        assert answer.status == 200 and text in answer.body, (path, answer.status, answer.body[:300])
    assert (await asyncio.to_thread(https, site, "GET", "/api/v1/health")).headers["Strict-Transport-Security"]
    # a file in the static folder on disk is nginx's to serve; the others fall through to the servers
    (site.nginx.folder / "srv" / "static" / "on-disk.txt").write_text("from nginx's disk\n")
    answer = await asyncio.to_thread(https, site, "GET", "/static/on-disk.txt")
    assert answer.status == 200 and answer.body == b"from nginx's disk\n" and "max-age=3600" in answer.headers[
        "Cache-Control"]
    answer = await asyncio.to_thread(plain, site.nginx.ports.http, "/console/pvs?x=1", host=HOST)
    assert answer.status == 301 and answer.headers["Location"] == f"https://{HOST}/console/pvs?x=1"


async def test_a_login_needs_django_to_see_https(site):
    """Django's CSRF check compares the Origin with https://<Host>: it passes only if nginx passed
    on both the Host (with its port) and X-Forwarded-Proto."""
    await asyncio.to_thread(log_in, site)
    as_if_http = await asyncio.to_thread(post_login, site, site.origin.replace("https://", "http://"))
    assert as_if_http.status == 403, as_if_http.status


async def test_sockets_through_nginx_reach_both_servers(site):
    conns = [await ws(site, "/api/v1/pv-socket") for _ in range(4)]
    try:
        for conn in conns:
            await conn.send(json.dumps({"action": "subscribe", "pv": PV}))
        for conn in conns:
            await read_until(conn, value_of(PV))
    finally:
        for conn in conns:
            await conn.close()
    async with await ws(site, "/api/v1/device-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "device": "nginx_sig", "id": "d"}))
        answer = await read_until(conn, reply("d"))
        assert answer["subscribed"] == ["nginx_sig"], answer
        await read_until(conn, lambda m: m.get("device") == "nginx_sig" and "value" in m)
    upstreams: set[str] = set()
    deadline = time.monotonic() + 10
    while len(upstreams) < 2 and time.monotonic() < deadline:  # a socket's line is written when it closes
        await asyncio.sleep(0.2)
        upstreams = set(re.findall(r'"GET /api/v1/pv-socket HTTP/1.1" 101 .* upstream=(\S+)', site.nginx.access_log()))
    assert upstreams == {f"127.0.0.1:{s.port}" for s in site.servers}, site.nginx.access_log()


async def test_the_audit_records_the_client_behind_nginx(site):
    session = await asyncio.to_thread(log_in, site)
    async with await ws(site, "/api/v1/pv-socket", origin=site.origin,
                        additional_headers={"Cookie": f"sessionid={session}"}) as conn:
        await conn.send(json.dumps({"action": "set", "pv": PV, "value": 1.25, "id": 1}))
        answer = await read_until(conn, reply(1))
        assert answer["status"] == "done", (answer, site.servers[0].output(), site.servers[1].output())
    # an address a client writes itself is replaced by the one nginx saw
    async with await ws(site, "/api/v1/pv-socket", source="127.0.0.3",
                        additional_headers={"X-Forwarded-For": "10.9.9.9"}) as conn:
        await conn.send(json.dumps({"action": "set", "pv": PV, "value": 2.5, "id": 2}))
        answer = await read_until(conn, reply(2))
        assert answer["status"] != "done", answer  # anonymous: refused, and audited
    assert await asyncio.to_thread(audit_rows, site, "127.0.0.2") == [(USER, "127.0.0.2", "pv-socket", PV, "done")]
    [(username, _, _, _, outcome)] = await asyncio.to_thread(audit_rows, site, "127.0.0.3")
    assert (username, outcome) == ("", "refused")
    assert await asyncio.to_thread(audit_rows, site, "10.9.9.9") == []


async def test_a_page_from_another_origin_cannot_open_a_socket(site):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await ws(site, "/api/v1/pv-socket", origin="https://elsewhere.example.com")
    assert refused.value.response.status_code == 403


async def test_metrics_are_refused_on_the_public_side(site):
    for path in ["/metrics", "/metrics/", "/metrics?name=x", "/%6Detrics", "//metrics", "/static/../metrics",
                 "/metrics/server-8001"]:
        answer = await asyncio.to_thread(https, site, "GET", path)
        assert answer.status == 403 and b"<center>nginx</center>" in answer.body, (path, answer)


async def test_the_internal_block_serves_each_process_metrics_to_allowed_hosts_only(site):
    internal = site.nginx.ports.internal
    answer = await asyncio.to_thread(plain, internal, "/metrics/server-8001", "127.0.0.2")
    assert answer.status == 403 and b"nginx" in answer.body
    targets = [("/metrics/server-8001", site.servers[0].port), ("/metrics/server-8002", site.servers[1].port),
               ("/metrics/bridge", site.nginx.ports.bridge_metrics)]
    for path, port in targets:
        via_nginx = await asyncio.to_thread(plain, internal, path, "127.0.0.1")
        try:
            direct = (await asyncio.to_thread(plain, port, "/metrics", "127.0.0.1")).status
        except ConnectionRefusedError:  # no metrics listener (yet): nginx says the upstream is down
            direct = 502
        assert via_nginx.status == direct, (path, via_nginx.status, direct)
        if direct == 200:
            assert b"ophydsite_" in via_nginx.body, via_nginx.body[:300]
    assert (await asyncio.to_thread(plain, internal, "/api/v1/health", "127.0.0.1")).status == 404


@pytest.mark.run_last  # its 2 minutes pass while the rest of the suite runs
async def test_a_socket_left_idle_for_two_minutes_still_works(site, idle_socket):
    """Last in this module: the socket was opened before the other tests and has waited since."""
    await asyncio.sleep(max(0.0, IDLE_S - (time.monotonic() - idle_socket.opened)))
    idle_for = time.monotonic() - idle_socket.opened
    answer = await asyncio.to_thread(_subscribe_on, idle_socket.conn, PV)
    assert answer["pv"] == PV and idle_for >= IDLE_S, (answer, idle_for)


def _subscribe_on(conn: websockets.sync.client.ClientConnection, pv: str) -> dict[str, Any]:
    conn.send(json.dumps({"action": "subscribe", "pv": pv}))
    deadline = time.monotonic() + 15
    while not value_of(pv)(message := json.loads(conn.recv(timeout=max(deadline - time.monotonic(), 0.01)))):
        pass
    return message

