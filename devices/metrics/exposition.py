"""Serving the metrics: the server's ``/metrics`` view, the bridge's own small HTTP port, the
networks allowed to read them (OAS_METRICS_ALLOW), the dependency checks made per scrape,
and the HTTP timing middleware.

Metrics name what the site runs and how busy it is, so they stay off the public surface:
a request from outside OAS_METRICS_ALLOW gets 403. Behind a reverse proxy the address is the
client's when the proxy is in OAS_TRUSTED_PROXIES (uvicorn rewrites it), else the proxy's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from . import instruments

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0  # a dependency that does not answer a scrape's check within this is down
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- who may read ------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def allowed_networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    """OAS_METRICS_ALLOW's networks; a bad entry is logged and left out (refusing more, never
    allowing more)."""
    networks: list[Network] = []
    for part in spec:
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            log.error("OAS_METRICS_ALLOW: %r is not a network (e.g. 10.0.0.0/8); ignored", part)
    return tuple(networks)


def address_allowed(address: str | None, spec: tuple[str, ...]) -> bool:
    """Whether a client address lies in one of the allowed networks."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped  # ::ffff:127.0.0.1 on a dual-stack socket is 127.0.0.1
    return any(ip.version == net.version and ip in net for net in allowed_networks(spec))


def refusal_body(address: str | None) -> dict[str, str]:
    return {"error": f"/metrics is not served to {address or 'an unknown address'}; "
                     "allow its network with OAS_METRICS_ALLOW", "code": "forbidden"}


# --- dependency checks (blocking: run on a thread) -------------------------------------------

def check_database() -> int:
    """One ``SELECT 1`` on a connection of this thread, closed again (the checking threads are
    not Django's: a connection left open would never be cleaned up)."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return 1
    except Exception:  # noqa: BLE001 - any failure means the database is not usable
        return 0
    finally:
        connection.close()


def check_redis(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S)
    try:
        return 1 if client.ping() else 0
    except Exception:  # noqa: BLE001 - unreachable, refused, timed out: down
        return 0
    finally:
        client.close()


def check_bridge_heartbeat(url: str) -> int:
    """Scaled mode: every bridge shard's heartbeat is fresh in Redis (as /readyz reads it)."""
    import redis

    from devices.bridge.heartbeat import heartbeat_key, shard_problems

    prefix = str(settings.CHANNEL_LAYERS["bridge"].get("CONFIG", {}).get("prefix", "ophydsite"))
    shards = settings.OAS.bridge_shards
    client = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S)
    try:
        values = client.mget([heartbeat_key(prefix, index) for index in range(shards)])
        problems, _loading = shard_problems(list(values), shards)
        return 0 if problems else 1
    except Exception:  # noqa: BLE001 - Redis unreachable: the bridge cannot reach us either
        return 0
    finally:
        client.close()


def blocking_checks() -> dict[str, int]:
    """Database, and Redis when REDIS_URL is set (with an external bridge, its heartbeat)."""
    states = {"database": check_database()}
    url = getattr(settings, "REDIS_URL", None)
    if url:
        states["redis"] = check_redis(url)
        if settings.OAS.bridge == "external":
            states["bridge"] = check_bridge_heartbeat(url) if states["redis"] else 0
    return states


# One thread for the checks, so scrapes never pile up threads (or database connections).
_checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-checks")
_in_flight: asyncio.Future[dict[str, int]] | None = None


async def _server_checks() -> dict[str, int]:
    """The blocking checks off the loop; a check still running from an earlier scrape is
    joined, not repeated; one that takes too long counts as down."""
    global _in_flight
    loop = asyncio.get_running_loop()
    if _in_flight is None or _in_flight.done() or _in_flight.get_loop() is not loop:
        _in_flight = loop.run_in_executor(_checker, blocking_checks)
    try:
        return await asyncio.wait_for(asyncio.shield(_in_flight), CHECK_TIMEOUT_S + 1)
    except TimeoutError:
        down = {"database": 0}
        if getattr(settings, "REDIS_URL", None):
            down["redis"] = 0
            if settings.OAS.bridge == "external":
                down["bridge"] = 0
        return down


def _bridge_state(states: dict[str, int]) -> int:
    """Embedded: the bridge task of this loop is running. External: every shard's heartbeat
    is fresh (read by the blocking checks)."""
    if settings.OAS.bridge == "embedded":
        return 1 if instruments.bridges() else 0
    return states.get("bridge", 0)


def _queue_server_state() -> int | None:
    """With OAS_REQUIRE_QSERVER: whether the interlock's last status answer came (its cache,
    never a request during the scrape; a stale cache is refreshed in the background for the
    next scrape). None when writes do not depend on the Queue Server."""
    if not settings.OAS.require_qserver:
        return None
    from qsconsole.interlock import status_client

    client = status_client()
    last = getattr(client, "_last", None)
    if last is None or time.monotonic() - last.at > max(client.cache_s, 5.0):
        task = asyncio.get_running_loop().create_task(client.answer())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
    return None if last is None else int(last.status is not None)


async def refresh_dependencies() -> None:
    states = await _server_checks()
    states["bridge"] = _bridge_state(states)
    qs = _queue_server_state()
    if qs is not None:
        states["queue_server"] = qs
    instruments.DEPENDENCIES.clear()
    instruments.DEPENDENCIES.update(states)


# --- the server's view --------------------------------------------------------------------------

async def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text, rendered on the event loop (the collectors read the
    loop's sockets, hub and bridge) after the dependency checks ran on their thread."""
    address = request.META.get("REMOTE_ADDR")
    if not address_allowed(address, settings.OAS.metrics_allow):
        return JsonResponse(refusal_body(address), status=403)
    await refresh_dependencies()
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))  # OpenMetrics if asked for
    return HttpResponse(encode(REGISTRY), content_type=content_type)


# --- the bridge's port ------------------------------------------------------------------------

class _BridgeMetricsHandler(BaseHTTPRequestHandler):
    allow: tuple[str, ...] = ()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        address = self.client_address[0]
        if not address_allowed(address, self.allow):
            self._answer(403, "application/json", json.dumps(refusal_body(address)).encode())
            return
        if self.path.split("?", 1)[0] not in ("/metrics", "/"):
            self._answer(404, "application/json", b'{"error": "only /metrics here", "code": "not_found"}')
            return
        states = blocking_checks()
        states["bridge"] = 1 if instruments.bridges() else 0
        instruments.DEPENDENCIES.clear()
        instruments.DEPENDENCIES.update(states)
        encode, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._answer(200, content_type, encode(REGISTRY))

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Scrapes every few seconds would flood the bridge's output."""


def serve_bridge_metrics(port: int, allow: tuple[str, ...], host: str = "") -> ThreadingHTTPServer:
    """``/metrics`` of a ``runbridge`` process on its own port, in a daemon thread (the bridge's
    loop never serves HTTP). Returns the server (``server_address`` has the port bound)."""
    handler = type("BridgeMetricsHandler", (_BridgeMetricsHandler,), {"allow": tuple(allow)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bridge-metrics", daemon=True).start()
    return server


# --- HTTP timings -------------------------------------------------------------------------------

class HttpMetricsMiddleware:
    """Counts and times every HTTP request by method, route pattern and status class.

    First in MIDDLEWARE, so the time is the whole chain's. Route patterns, not paths: a path
    may name a PV. Async-capable, so HTTP views on the loop are not sent through a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        start = time.perf_counter()
        response = self.get_response(request)
        _record(request, response, time.perf_counter() - start)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        respond: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response  # type: ignore[assignment]
        response = await respond(request)
        _record(request, response, time.perf_counter() - start)
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _record(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    method = request.method if request.method in _METHODS else "other"
    match = getattr(request, "resolver_match", None)
    route = str(match.route) if match is not None and match.route else "unmatched"
    status = f"{response.status_code // 100}xx"
    instruments.HTTP_REQUESTS.labels(method, route, status).inc()
    instruments.HTTP_DURATION.labels(method, route).observe(seconds)
