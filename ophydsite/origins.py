"""Origin check on every WebSocket handshake.

A browser page may open a socket only from an allowed origin: the server's own host,
the origins in OAS_ALLOWED_ORIGINS, and, when that setting is empty, pages served from
localhost (a developer's app on another port). Requests without an Origin header are
scripts, not browsers, and pass (authentication for them comes with the security issue).
A refused handshake is closed cleanly (HTTP 403) and logged.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


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
            if origin and not origin_allowed(origin, host, settings.OAS.allowed_origins):
                log.warning("refused WebSocket %s from origin %s", scope.get("path"), origin)
                await receive()  # the websocket.connect event
                await send({"type": "websocket.close", "code": 4003})
                return None
        return await self.app(scope, receive, send)
