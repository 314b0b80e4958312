"""Where a worker finds its hub, and where the embedded bridge is started.

Both are created once per event loop: by `manage.py serve` at startup (ASGI lifespan,
ophydsite/asgi.py), else on first use (daphne, tests). In embedded mode (no Redis) the
bridge runs as a task on the same loop: commands travel through the in-memory layer, PV
batches are handed to the hub as Python objects (channel_layer/local.py).
"""

from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer
from django.conf import settings

from devices.bridge.server import Bridge
from devices.core.hub import Hub

log = logging.getLogger(__name__)

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}
_bridges: dict[asyncio.AbstractEventLoop, tuple[Bridge, asyncio.Task[None]]] = {}
_lock: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

async def get_hub() -> Hub:
    """The hub of the running loop, started (with the embedded bridge) on first call."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is not None:
        return hub
    lock = _lock.setdefault(loop, asyncio.Lock())
    async with lock:
        hub = _hubs.get(loop)
        if hub is None:
            for stale in [other for other in _hubs if other.is_closed()]:
                _hubs.pop(stale, None)
                _bridges.pop(stale, None)
                _lock.pop(stale, None)
            if settings.OAS.bridge == "embedded":
                await start_embedded_bridge()
            hub = Hub(layer=get_channel_layer(), command_layer=get_channel_layer("bridge"),
                      lease_s=settings.OAS.lease_s, shards=settings.OAS.bridge_shards)
            await hub.start()
            _hubs[loop] = hub
    return hub


async def start_embedded_bridge() -> Bridge:
    """Run the bridge as a task of this loop (idempotent)."""
    loop = asyncio.get_running_loop()
    existing = _bridges.get(loop)
    if existing is not None:
        return existing[0]
    bridge = Bridge(layer=get_channel_layer(), command_layer=get_channel_layer("bridge"),
                    settings=settings.OAS)
    task = loop.create_task(bridge.run(), name="embedded-bridge")
    _bridges[loop] = (bridge, task)
    await bridge.started.wait()
    log.info("embedded bridge started")
    return bridge


def embedded_bridge() -> Bridge | None:
    """The bridge running on this loop, if any (for tests and diagnostics)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    found = _bridges.get(loop)
    return found[0] if found else None


async def shutdown() -> None:
    """Stop this loop's hub and bridge, releasing every channel."""
    loop = asyncio.get_running_loop()
    hub = _hubs.pop(loop, None)
    if hub is not None:
        await hub.stop()
    found = _bridges.pop(loop, None)
    if found is not None:
        found[1].cancel()
        try:
            await found[1]
        except asyncio.CancelledError:
            pass
