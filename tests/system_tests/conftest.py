"""Fixtures for system tests: the ASGI app with its embedded bridge, and socket clients."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

from tests.support.browser import ARTIFACTS, chromium_path
from tests.support.wsclient import TEST_OAS


@pytest.fixture(scope="session", autouse=True)
def oas_for_tests():
    """Short grace periods and small limits so the tests can reach them quickly."""
    original = settings.OAS
    settings.OAS = replace(original, **TEST_OAS)
    yield settings.OAS
    settings.OAS = original


@pytest.fixture(scope="session", autouse=True)
def database_for_the_server(django_db_setup, django_db_blocker):
    """The in-process server uses the (test) database as a deployed one would: Channels closes
    stale connections before each message, reloads record their results. Allow it."""
    with django_db_blocker.unblock():
        yield


class Ws:
    """A WebSocket client of the in-process ASGI application."""

    def __init__(self, path: str) -> None:
        from ophydsite.asgi import application

        self.comm = WebsocketCommunicator(application, path)

    async def connect(self) -> Ws:
        connected, _ = await self.comm.connect(timeout=10)
        assert connected
        return self

    async def send(self, message: Any) -> None:
        await self.comm.send_to(text_data=message if isinstance(message, str) else json.dumps(message))

    async def _receive(self, timeout: float) -> dict[str, Any]:
        # Read the output queue directly: the communicator's own receive cancels the
        # application on timeout, which would end the session under test.
        while True:
            event = await asyncio.wait_for(self.comm.output_queue.get(), timeout)
            if event["type"] == "websocket.send":
                return json.loads(event["text"])
            if event["type"] == "websocket.close":
                raise ConnectionError(f"server closed the socket with {event.get('code')}")

    async def next(self, where: Any = None, timeout: float = 10.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no matching message within {timeout} s")
            msg = await self._receive(remaining)
            if where is None or where(msg):
                return msg

    async def expect_all(self, *wanted: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first message matching each predicate, in whatever order they arrive."""
        found: list[dict[str, Any] | None] = [None] * len(wanted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(f is None for f in found):
            remaining = deadline - loop.time()
            if remaining <= 0:
                missing = [i for i, f in enumerate(found) if f is None]
                raise TimeoutError(f"predicates {missing} unmatched within {timeout} s")
            msg = await self._receive(remaining)
            for i, predicate in enumerate(wanted):
                if found[i] is None and predicate(msg):
                    found[i] = msg
        return found  # type: ignore[return-value]

    async def drain(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        out = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            try:
                out.append(await self._receive(max(deadline - loop.time(), 0.01)))
            except TimeoutError:
                break
        return out

    async def close(self) -> None:
        await self.comm.disconnect()


@pytest.fixture
async def ws(transactional_db):
    """Factory of connected clients; all are closed after the test. The server reads its access
    rules and writes its audit to the (test) database, as a deployed one does."""
    opened: list[Ws] = []

    async def make(path: str = "/api/v1/pv-socket") -> Ws:
        client = await Ws(path).connect()
        opened.append(client)
        return client

    yield make
    for client in opened:
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - already closed by the test
            pass


# --- headless Chromium (Debian's), driven by Playwright -------------------------------------

@pytest.fixture(scope="session")
def chromium():
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is needed for the browser tests and could not be installed")
        pytest.skip("no Chromium here (and no root to install Debian's package)")
    return str(path)


@pytest.fixture
async def page(chromium, request):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        tab = await browser.new_page(viewport={"width": 1280, "height": 900})
        yield tab
        outcome = getattr(request.node, "rep_call", None)
        if outcome is not None and outcome.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await browser.close()
