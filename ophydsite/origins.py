"""Origin check on every WebSocket handshake.

A browser page may open a socket only from an allowed origin: the server's own host,
the origins in OAS_ALLOWED_ORIGINS and the admin's table, and, while neither lists any,
pages served from localhost (a developer's app on another port). Requests without an Origin
header are scripts, not browsers; they pass when they authenticate with an API token, or
while OAS_ALLOW_NO_ORIGIN is true (the default, for ophyd-websocket scripts without tokens).
A refused handshake is closed cleanly (HTTP 403) and logged. Origins added in the admin
(devices.AllowedOrigin) count from the next handshake, read through a cache of
``ORIGIN_CACHE_S`` seconds, without a restart.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings

log = logging.getLogger(__name__)

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
ORIGIN_CACHE_S = 5.0
_cache: tuple[float, tuple[str, ...]] = (0.0, ())


async def allowed_origins() -> tuple[str, ...]:
    """OAS_ALLOWED_ORIGINS plus the admin's table, the table read at most every ORIGIN_CACHE_S."""
    global _cache
    now = time.monotonic()
    if now - _cache[0] >= ORIGIN_CACHE_S:
        _cache = (now, await _table_origins())
    return tuple(settings.OAS.allowed_origins) + _cache[1]


@database_sync_to_async
def _table_origins() -> tuple[str, ...]:
    from devices.models import AllowedOrigin

    try:
        return tuple(AllowedOrigin.objects.values_list("origin", flat=True))
    except Exception:  # noqa: BLE001 - no table yet (not migrated): settings only
        log.exception("reading allowed origins from the database failed")
        return ()


def origin_allowed(origin: str, host_header: str, allowed: tuple[str, ...]) -> bool:
    """Whether a page from ``origin`` may open a socket to the server named by ``host_header``."""
    origin = origin.rstrip("/")
    if origin in allowed or "*" in allowed:
        return True
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False
    if parts.netloc.lower() == host_header.lower():
        return True
    return not allowed and (parts.hostname or "") in _LOCAL_HOSTS


class OriginCheckMiddleware:
    """ASGI middleware refusing WebSocket handshakes from origins that are not allowed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin", b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1")
            if not origin:  # a script: allowed when it authenticates with a token, or by the setting
                refused = not (settings.OAS.allow_no_origin or scope.get("api_token"))
            else:
                refused = not origin_allowed(origin, host, await allowed_origins())
            if refused:
                log.warning("refused WebSocket %s from origin %s", scope.get("path"), origin or "(none)")
                await receive()  # the websocket.connect event
                await send({"type": "websocket.close", "code": 4003})
                return None
        return await self.app(scope, receive, send)
