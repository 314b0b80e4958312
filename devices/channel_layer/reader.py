"""Reading a channel-layer channel for as long as the process runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


async def serve_channel(layer: Any, channel: str, handle: Callable[[dict[str, Any]], None], what: str) -> None:
    """Hand every message on ``channel`` to ``handle`` until cancelled.

    A failing read (Redis restarting, say) is retried after a second and a failing handler
    is logged; neither ends the loop, since the bridge and hubs must outlive both.
    """
    while True:
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("%s: reading %s failed; retrying in 1 s", what, channel)
            await asyncio.sleep(1.0)
            continue
        try:
            handle(message)
        except Exception:  # noqa: BLE001
            log.exception("%s: handling %r failed", what, message.get("type"))
