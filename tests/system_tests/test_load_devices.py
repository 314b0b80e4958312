"""POST /api/v1/load-devices: the bridge reloads startup files from the folder and the database."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from devices.models import DeviceRecord, StartupFile

pytestmark = [pytest.mark.system, pytest.mark.timeout(60), pytest.mark.django_db(transaction=True)]

FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"


@pytest.fixture
def startup_dir(tmp_path):
    folder = tmp_path / "startup"
    folder.mkdir()
    for name in ("00_signals.py", "10_device.py", "40_raises.py"):
        shutil.copy(FILES / name, folder / name)
    original = settings.OAS
    settings.OAS = replace(original, startup_dir=str(folder), startup_timeout_s=5.0)
    yield folder
    settings.OAS = original


async def test_reload_reports_devices_and_per_file_errors(ioc, startup_dir, async_client):
    await sync_to_async(StartupFile.objects.create)(name="50_db.py", content=(
        "from ophyd import EpicsSignalRO\nro = EpicsSignalRO('TST:ro', name='db_ro')\n"))
    response = await async_client.post("/api/v1/load-devices")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "partial"
    assert body["devices"] == ["db_ro", "m1_rbv", "m1_sp", "stage"]
    assert list(body["errors"]) == ["40_raises.py"] and "boom" in body["errors"]["40_raises.py"]
    assert body["duration_s"] > 0
    record = await sync_to_async(DeviceRecord.objects.get)(name="stage")
    assert record.device_class.endswith("Stage")
    assert [(c["attr"], c["class"], c["pv"]) for c in record.components] == [
        ("sp", "EpicsSignal", "TST:m2:sp"), ("rbv", "EpicsSignalRO", "TST:m2:rbv")]
    db_file = await sync_to_async(StartupFile.objects.get)(name="50_db.py")
    assert db_file.last_load_status == "ok" and db_file.devices == ["db_ro"]


async def test_reload_with_a_missing_folder_says_so(ioc, startup_dir, async_client):
    shutil.rmtree(startup_dir)
    body = (await async_client.post("/api/v1/load-devices")).json()
    assert body["status"] == "error" and "does not exist" in body["errors"]["startup_dir"]


async def test_get_is_refused_with_json(async_client):
    response = await async_client.get("/api/v1/load-devices")
    assert response.status_code == 405 and "POST" in response.json()["error"]
