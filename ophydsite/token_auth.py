"""API tokens on the WebSocket handshake: ``Authorization: Bearer <key>``, never the URL.

Runs inside Channels' AuthMiddlewareStack, so a valid token replaces the session user. A
handshake with a bad, revoked or expired token, or with a token in the query string, is
refused (HTTP 403) and logged: a script should fail loudly rather than run anonymously.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

log = logging.getLogger(__name__)

URL_TOKEN_KEYS = {"token", "api_token", "apikey", "api_key", "access_token", "key"}
CLOSE_UNAUTHORIZED = 4401


def url_has_token(query_string: bytes) -> bool:
    """Whether a query string carries something that looks like a credential."""
    keys = {k.lower() for k in parse_qs(query_string.decode("latin-1"), keep_blank_values=True)}
    return bool(keys & URL_TOKEN_KEYS)


class TokenAuthMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        from devices.access.tokens import api_token_authenticate, bearer_key

        why = ""
        if url_has_token(scope.get("query_string", b"")):
            why = "API tokens are accepted only in the Authorization header, never in the URL"
        headers = dict(scope.get("headers") or [])
        header = headers.get(b"authorization")
        if header is not None and not why:
            key = bearer_key(header.decode("latin-1"))
            if key is None:
                why = "the Authorization header must be 'Bearer <token>'"
            else:
                token, why = await database_sync_to_async(api_token_authenticate)(key)
                if token is not None:
                    scope = dict(scope, user=token.user, api_token=token.label, api_token_id=token.pk)
        if why:
            log.warning("refused WebSocket %s from %s: %s", scope.get("path"), (scope.get("client") or ["?"])[0], why)
            await receive()  # the websocket.connect event
            await send({"type": "websocket.close", "code": CLOSE_UNAUTHORIZED, "reason": why})
            return None
        return await self.app(scope, receive, send)
