"""The Queue Server write interlock: no manual write while a plan runs or is paused.

With OAS_REQUIRE_QSERVER on, every write path asks the Queue Server's HTTP API
(bluesky-httpserver, ``GET /api/status``) before it writes. One answer is reused for
OAS_QSERVER_STATUS_CACHE_S so a dragged slider does not flood the Queue Server, and
concurrent writes share one request. If the Queue Server cannot be asked, writes are
refused: an interlock that opens when its sensor is gone is no interlock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from ophydsite.settings.oas import OasSettings

# manager_state values of bluesky-queueserver during which a plan is in progress.
_PLAN_STATES = {"starting_queue", "executing_queue", "paused"}
_RE_BUSY = {"running", "paused", "pausing", "halting", "aborting", "stopping"}


def plan_activity(status: dict[str, Any]) -> str | None:
    """Why a Queue Server status forbids manual writes, or None when it does not."""
    manager = status.get("manager_state")
    re_state = status.get("re_state")
    running = status.get("running_item_uid")
    if manager == "paused" or re_state == "paused":
        return f"a plan is paused on the Queue Server (manager_state {manager!r}, re_state {re_state!r})"
    if running or manager in _PLAN_STATES or re_state in _RE_BUSY:
        item = f", running item {running}" if running else ""
        return f"a plan is running on the Queue Server (manager_state {manager!r}, re_state {re_state!r}{item})"
    return None


@dataclass(frozen=True)
class QsAnswer:
    """One look at the Queue Server: its status JSON, or why there is none."""

    status: dict[str, Any] | None
    error: str | None
    http_status: int | None
    at: float


class QueueServerStatus:
    """Reads ``/api/status`` off the event loop; shares and briefly reuses answers."""

    def __init__(self, *, base_url: str, api_key: str, timeout_s: float, cache_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._last: QsAnswer | None = None
        self._pending: asyncio.Task[QsAnswer] | None = None
        self.requests_sent = 0

    async def answer(self, *, fresh: bool = False) -> QsAnswer:
        last = self._last
        if not fresh and last is not None and time.monotonic() - last.at < self.cache_s:
            return last
        pending = self._pending
        if pending is None or pending.done() or pending.get_loop() is not asyncio.get_running_loop():
            pending = self._pending = asyncio.get_running_loop().create_task(self._ask())
        return await asyncio.shield(pending)

    async def _ask(self) -> QsAnswer:
        self.requests_sent += 1
        answer = await asyncio.to_thread(self._get)
        self._last = answer  # here, not in the waiters: a call between this and their wake-up reuses it
        return answer

    def _get(self) -> QsAnswer:
        url = f"{self.base_url}/api/status"
        try:
            response = requests.get(url, headers={"Authorization": f"ApiKey {self._api_key}",
                                                  "Accept": "application/json"}, timeout=self.timeout_s)
        except requests.Timeout:
            return QsAnswer(None, f"the Queue Server at {self.base_url} did not answer within {self.timeout_s:g} s",
                            None, time.monotonic())
        except requests.RequestException as exc:
            return QsAnswer(None, f"the Queue Server at {self.base_url} cannot be reached ({type(exc).__name__})",
                            None, time.monotonic())
        if response.status_code != 200:
            hint = " (check QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY)" if response.status_code in (401, 403) else ""
            return QsAnswer(None, f"the Queue Server at {self.base_url} answered HTTP {response.status_code}{hint}",
                            response.status_code, time.monotonic())
        try:
            status = response.json()
        except ValueError:
            status = None
        if not isinstance(status, dict):
            return QsAnswer(None, f"the Queue Server at {self.base_url} sent a status that is not a JSON object",
                            200, time.monotonic())
        return QsAnswer(status, None, 200, time.monotonic())


class QueueServerInterlock:
    """The Interlock of writes.Writer when OAS_REQUIRE_QSERVER is on."""

    def __init__(self, status: QueueServerStatus) -> None:
        self.status = status

    async def refusal(self) -> str | None:
        answer = await self.status.answer()
        if answer.status is None:
            return (f"Writes are interlocked with the Queue Server (OAS_REQUIRE_QSERVER) and {answer.error}; "
                    "refused until it answers")
        busy = plan_activity(answer.status)
        if busy is not None:
            return f"Writes are refused while {busy}; wait until it is idle"
        return None


class _Open:
    async def refusal(self) -> str | None:
        return None


_OPEN = _Open()
_STATUS: dict[tuple[str, str, float, float], QueueServerStatus] = {}


def status_client(oas: OasSettings | None = None) -> QueueServerStatus:
    """The process's Queue Server status reader for the current settings."""
    oas = oas or settings.OAS
    key = (f"http://{oas.qserver_http_host}:{oas.qserver_http_port}", oas.qserver_api_key,
           oas.qserver_timeout_s, oas.qserver_status_cache_s)
    client = _STATUS.get(key)
    if client is None:
        client = _STATUS[key] = QueueServerStatus(base_url=key[0], api_key=key[1], timeout_s=key[2], cache_s=key[3])
    return client


def current_interlock() -> QueueServerInterlock | _Open:
    """What writes must pass now (read at each write: the setting may change in tests/admin)."""
    if not settings.OAS.require_qserver:
        return _OPEN
    return QueueServerInterlock(status_client())
