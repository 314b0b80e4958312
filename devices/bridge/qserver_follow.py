"""The bridge follows the Queue Server's devices (OAS_QSERVER_DEVICES): it polls the Queue
Server's status and asks for a reload when the fields that describe its devices change
(``devices_allowed_uid``, ``devices_existing_uid``, environment opened or closed) or when it
answers again after it could not be asked at the last reload."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from qsconsole.devices_allowed import status_key
from qsconsole.qs_http import QsHttp

log = logging.getLogger(__name__)


class QserverFollower:
    """``reloaded(reply)`` after every reload; ``run()`` polls until cancelled."""

    def __init__(self, *, client: QsHttp, period_s: float, reload: Callable[[], Awaitable[None]]) -> None:
        self._client = client
        self._period_s = period_s
        self._reload = reload
        self.key: list[Any] | None = None  # the Queue Server state the registry was last built from

    def reloaded(self, reply: dict[str, Any]) -> None:
        """Remember what a reload asked the Queue Server (its ``qserver`` part of the reply)."""
        part = reply.get("qserver")
        if isinstance(part, dict):
            self.key = part.get("key")

    def wants_reload(self, status: dict[str, Any]) -> bool:
        return list(status_key(status)) != self.key

    async def check(self) -> bool:
        """Poll once; reload (and wait for it) when the Queue Server's devices changed."""
        reply = await self._client.call("GET", "/api/status")
        if not reply.ok or reply.body is None or not self.wants_reload(reply.body):
            return False
        log.info("the Queue Server's devices changed (%s was %s): reloading",
                 list(status_key(reply.body)), self.key)
        await self._reload()
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - polled again next period
                log.exception("following the Queue Server's devices failed")
