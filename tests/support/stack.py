"""A bridge and hub wired through a real in-memory channel layer, for fast tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from channels.layers import InMemoryChannelLayer

from devices.access.guard import Guard, MemoryAudit, StaticRules
from devices.access.rules import Level, Policy, Principal, Rule
from devices.bridge.server import Bridge
from devices.core.hub import Hub
from ophydsite.settings.oas import OasSettings


class Stack:
    def __init__(self, source_factory: Any, **overrides: Any) -> None:
        # No database here: the admin's device-state writer never runs in these tests.
        defaults = {"load_devices_on_start": False, "device_state_period_s": 3600.0}
        self.settings = replace(OasSettings(), **(defaults | overrides))
        self.layer = InMemoryChannelLayer(capacity=10000)
        self.bridge = Bridge(layer=self.layer, command_layer=self.layer, settings=self.settings,
                             source_factory=source_factory, pva_factory=source_factory)
        self.hub = Hub(layer=self.layer, command_layer=self.layer, lease_s=self.settings.lease_s)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stack:
        self._task = asyncio.create_task(self.bridge.run())
        await self.bridge.started.wait()
        await self.hub.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.hub.stop()
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


class Client:
    """Drives a session like a socket would and collects what it sends."""

    def __init__(self, session_class: Any, stack: Stack, send: Any = None, guard: Guard | None = None) -> None:
        """``send``: replaces the socket's send (e.g. one that never returns, a stuck client).
        ``guard``: who the client is; by default an anonymous client everything is open to
        (the access rules are tested on their own), its audit kept in ``self.audit``."""
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed_with: int | None = None
        self.audit = MemoryAudit()
        guard = guard or Guard(principal=Principal(), policy=Policy(anonymous_writes=True),
                               rules=StaticRules((Rule("everything", "*", Level.WRITE),)), audit=self.audit,
                               path="test")
        self.session = session_class(hub=stack.hub, settings=stack.settings, send=send or self._send, guard=guard,
                                     close=self._close, client="test")

    async def _send(self, text: str) -> None:
        self.inbox.put_nowait(json.loads(text))

    async def _close(self, code: int) -> None:
        self.closed_with = code

    async def send(self, message: Any) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        await self.session.receive(text, None)

    async def next(self, timeout: float = 3.0, where: Any = None) -> dict[str, Any]:
        """The next message (optionally the next one matching ``where``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await asyncio.wait_for(self.inbox.get(), max(deadline - loop.time(), 0.001))
            if where is None or where(msg):
                return msg

    async def expect_all(self, *wanted: Any, timeout: float = 3.0) -> list[dict[str, Any]]:
        """The first message matching each predicate, in whatever order they arrive."""
        found: list[dict[str, Any] | None] = [None] * len(wanted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(f is None for f in found):
            msg = await asyncio.wait_for(self.inbox.get(), max(deadline - loop.time(), 0.001))
            for i, predicate in enumerate(wanted):
                if found[i] is None and predicate(msg):
                    found[i] = msg
        return found  # type: ignore[return-value]

    async def quiet(self, seconds: float = 0.2) -> list[dict[str, Any]]:
        await asyncio.sleep(seconds)
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out
