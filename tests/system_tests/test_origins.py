"""Origin check on the WebSocket handshake, with origins from settings and the admin's table."""

from __future__ import annotations

from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from devices.models import AllowedOrigin
from ophydsite import origins

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]


async def handshake(origin: str, path: str = "/api/v1/pv-socket") -> bool:
    from ophydsite.asgi import application

    comm = WebsocketCommunicator(application, path,
                                 headers=[(b"origin", origin.encode()), (b"host", b"server.lab:8001")])
    connected, _ = await comm.connect(timeout=5)
    if connected:
        await comm.disconnect()
    return connected


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(origins, "ORIGIN_CACHE_S", 0.0)
    yield
    AllowedOrigin.objects.all().delete()


async def test_same_host_and_localhost_pass_others_are_refused(fresh_cache):
    assert await handshake("http://server.lab:8001")
    assert await handshake("http://localhost:3000")
    assert not await handshake("https://evil.example")


@pytest.mark.parametrize("path", ["/api/v1/device-socket", "/monitor"])
async def test_every_socket_checks_the_origin(fresh_cache, path):
    assert await handshake("http://server.lab:8001", path)
    assert not await handshake("https://evil.example", path)


async def test_origin_added_in_the_table_applies_without_restart(fresh_cache):
    assert not await handshake("https://portal.lab")
    await sync_to_async(AllowedOrigin.objects.create)(origin="https://portal.lab")
    assert await handshake("https://portal.lab")
    # once any origin is configured, localhost pages are no longer allowed by default
    assert not await handshake("http://localhost:3000")


async def test_settings_and_table_are_merged(fresh_cache):
    original = settings.OAS
    settings.OAS = replace(original, allowed_origins=("https://a.lab",))
    try:
        await sync_to_async(AllowedOrigin.objects.create)(origin="https://b.lab")
        assert await handshake("https://a.lab") and await handshake("https://b.lab")
        assert not await handshake("https://c.lab")
    finally:
        settings.OAS = original


def test_table_entries_are_validated(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        AllowedOrigin(origin="portal.lab/path").full_clean()
    entry = AllowedOrigin(origin="https://portal.lab/")
    entry.full_clean()
    assert entry.origin == "https://portal.lab"


async def test_handshake_without_origin_follows_the_setting(fresh_cache):
    from ophydsite.asgi import application

    async def bare() -> bool:
        comm = WebsocketCommunicator(application, "/api/v1/pv-socket")
        connected, _ = await comm.connect(timeout=5)
        if connected:
            await comm.disconnect()
        return connected

    assert await bare()  # scripts without an Origin pass by default
    original = settings.OAS
    settings.OAS = replace(original, allow_no_origin=False)
    try:
        assert not await bare()
    finally:
        settings.OAS = original
