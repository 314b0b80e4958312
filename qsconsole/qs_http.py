"""Requests to bluesky-httpserver, off the event loop, with the server's API key.

The key comes from the settings (QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY) and never leaves
the server. Every failure is turned into a ``QsReply`` that says what went wrong in words an
operator can act on; nothing raises.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from ophydsite.settings.oas import OasSettings


@dataclass(frozen=True)
class QsReply:
    """One answer of the Queue Server: ``kind`` ok | refused (it said ``success: false``) |
    unreachable | timeout | error (HTTP error, bad key, not JSON)."""

    kind: str
    body: dict[str, Any] | None
    error: str | None = None
    http_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


class QsHttp:
    """A bluesky-httpserver client: ``await client.call("POST", "/api/queue/start")``."""

    def __init__(self, *, base_url: str, api_key: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout_s = timeout_s

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> QsReply:
        return await asyncio.to_thread(self.call_blocking, method, path, body)

    def call_blocking(self, method: str, path: str, body: dict[str, Any] | None = None) -> QsReply:
        """The same request on the calling thread (for code already off the loop)."""
        where = f"the Queue Server at {self.base_url}"
        try:
            response = requests.request(method, self.base_url + path, json=body, timeout=self.timeout_s,
                                        headers={"Authorization": f"ApiKey {self._api_key}",
                                                 "Accept": "application/json"})
        except requests.Timeout:
            return QsReply("timeout", None, f"{where} did not answer within {self.timeout_s:g} s "
                           "(busy or gone); the request may or may not have taken effect")
        except requests.RequestException as exc:
            return QsReply("unreachable", None, f"{where} cannot be reached ({type(exc).__name__})")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 408:  # bluesky-httpserver: RE Manager did not answer it
            detail = answer.get("detail") if isinstance(answer, dict) else None
            return QsReply("timeout", None, f"{where}: the RE Manager did not answer (busy or gone): {detail or ''}",
                           408)
        if response.status_code != 200:
            hint = " (check QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY)" if response.status_code in (401, 403) else ""
            detail = answer.get("detail") if isinstance(answer, dict) else None
            text = f"{where} answered HTTP {response.status_code}{hint}" + (f": {detail}" if detail else "")
            return QsReply("error", answer if isinstance(answer, dict) else None, text, response.status_code)
        if not isinstance(answer, dict):
            return QsReply("error", None, f"{where} sent an answer that is not a JSON object", 200)
        if answer.get("success") is False:
            return QsReply("refused", answer, str(answer.get("msg") or "refused, without a message"), 200)
        return QsReply("ok", answer, None, 200)


def qs_http_client(oas: OasSettings | None = None, *, timeout_s: float | None = None) -> QsHttp:
    """A client for the current settings (read at each use: tests and deployments change them)."""
    oas = oas or settings.OAS
    return QsHttp(base_url=f"http://{oas.qserver_http_host}:{oas.qserver_http_port}", api_key=oas.qserver_api_key,
                  timeout_s=timeout_s if timeout_s is not None else oas.qserver_action_timeout_s)
