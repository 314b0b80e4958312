"""Channels of this process that take PV update batches as Python objects.

In embedded mode the bridge and the hub share one event loop. Sending them a ``pv.batch``
through the layer encoded every update to JSON and parsed it back (with the in-memory
layer's copy in between): at 2,000 PVs × 10 Hz about a tenth of the server (py-spy, see
docs/design.md). A hub registers here; the publisher hands a batch for a channel registered
on its own loop straight to it, and sends through the layer to every other channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

BatchReceiver = Callable[[list[dict[str, Any]]], None]

_receivers: dict[str, tuple[asyncio.AbstractEventLoop, BatchReceiver]] = {}


def register(channel: str, receive: BatchReceiver) -> None:
    """``receive`` takes the update messages meant for ``channel``, on the running loop."""
    _receivers[channel] = (asyncio.get_running_loop(), receive)


def unregister(channel: str) -> None:
    _receivers.pop(channel, None)


def receiver(channel: str, loop: asyncio.AbstractEventLoop) -> BatchReceiver | None:
    """The receiver of ``channel`` if it lives on ``loop``; None: send through the layer.

    The messages are shared, not copied: receivers must not change them."""
    entry = _receivers.get(channel)
    if entry is None or entry[0] is not loop:
        return None
    return entry[1]
