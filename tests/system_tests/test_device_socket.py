"""/api/v1/device-socket against real devices: ophyd objects from startup files on a caproto IOC."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings

from devices.runtime import get_hub

pytestmark = [pytest.mark.system, pytest.mark.timeout(90), pytest.mark.django_db(transaction=True)]

FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"
PATH = "/api/v1/device-socket"


def value_of(device: str, signal: str | None = None):
    return lambda m: (m.get("device") == device and "value" in m and m.get("sub_type") != "meta"
                      and (signal is None or m.get("signal") == signal))


def meta_of(device: str, signal: str | None = None):
    return lambda m: (m.get("device") == device and m.get("sub_type") == "meta"
                      and (signal is None or m.get("signal") == signal))


def reply(request_id):
    return lambda m: m.get("id") == request_id


@pytest.fixture
def startup_dir(tmp_path):
    folder = tmp_path / "startup"
    folder.mkdir()
    for name in ("00_signals.py", "10_device.py", "20_pseudo.py"):
        shutil.copy(FILES / name, folder / name)
    original = settings.OAS
    settings.OAS = replace(original, startup_dir=str(folder), startup_timeout_s=10.0)
    yield folder
    settings.OAS = original


@pytest.fixture
async def loaded(ioc, startup_dir):
    hub = await get_hub()
    outcome = await hub.reload_devices(60.0)
    assert outcome["status"] == "ok", outcome
    return outcome


async def test_subscribe_signal_gets_summary_meta_and_value(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "m1_sp", "id": 1})
    summary, meta, value = await client.expect_all(reply(1), meta_of("m1_sp"), value_of("m1_sp"))
    assert summary["subscribed"] == ["m1_sp"] and summary["failed"] == []
    assert summary["details"]["m1_sp"]["kind"] == "signal"
    assert meta["signal"] == "m1_sp" and meta["obj"] == "m1_sp" and meta["units"] == "mm"
    assert meta["lower_ctrl_limit"] == -100.0 and meta["connected"] is True
    assert value["signal"] == "m1_sp" and value["connected"] is True and value["write_access"] is True
    assert isinstance(value["value"], float)
