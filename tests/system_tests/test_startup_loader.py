"""Loading startup files against the real IOC: good, broken, raising and hanging files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devices.startup.loader import load_sources
from devices.startup.registry import DeviceRegistry
from devices.startup.sources import sources_from_path

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"


@pytest.fixture(scope="module")
def loaded(ioc):
    return load_sources(sources_from_path(FILES), timeout_s=2.0)


def test_good_files_register_devices_by_their_ophyd_name(loaded):
    assert set(loaded.objects) == {"m1_sp", "m1_rbv", "stage", "slit", "m1_alias"}
    by_file = {f.name: f for f in loaded.files}
    assert by_file["00_signals.py"].devices == ["m1_sp", "m1_rbv"] and by_file["00_signals.py"].ok
    assert by_file["60_after.py"].ok  # later files see earlier files' names


def test_broken_files_are_reported_with_tracebacks(loaded):
    errors = loaded.errors
    assert set(errors) == {"30_syntax_error.py", "40_raises.py", "50_hangs.py"}
    assert "SyntaxError" in errors["30_syntax_error.py"]
    assert "boom: this startup file fails on purpose" in errors["40_raises.py"]
    assert "did not finish within 2 s" in errors["50_hangs.py"] and "time.sleep" in errors["50_hangs.py"]
    hang = next(f for f in loaded.files if f.name == "50_hangs.py")
    assert 1.9 < hang.duration_s < 10


def test_loaded_objects_are_live_ophyd_objects(loaded):
    m1 = loaded.objects["m1_sp"]
    m1.wait_for_connection(timeout=5)
    assert isinstance(m1.get(), float)
    stage = loaded.objects["stage"]
    stage.wait_for_connection(timeout=5)
    assert stage.rbv.name == "stage_rbv" and isinstance(stage.rbv.get(), float)
    slit = loaded.objects["slit"]
    assert slit.position.gap == pytest.approx(2.0)


def test_single_file_path_and_missing_path(tmp_path):
    one = tmp_path / "only.py"
    one.write_text("x = 1\n")
    assert [s.name for s in sources_from_path(one)] == ["only.py"]
    with pytest.raises(FileNotFoundError):
        sources_from_path(tmp_path / "nope")


def test_a_failed_reload_keeps_the_devices_the_file_had(ioc, tmp_path):
    folder = tmp_path / "startup"
    folder.mkdir()
    for name in ("00_signals.py", "10_device.py"):
        shutil.copy(FILES / name, folder / name)
    registry = DeviceRegistry()
    first = registry.apply(load_sources(sources_from_path(folder), timeout_s=5))
    assert sorted(first.loaded) == ["m1_rbv", "m1_sp", "stage"]
    stage_before = registry.get("stage").obj
    (folder / "10_device.py").write_text("raise ValueError('edited badly')\n")
    (folder / "00_signals.py").write_text(
        "from ophyd import EpicsSignal\nm1_sp = EpicsSignal('TST:m1:sp', name='m1_sp')\n")
    report = registry.apply(load_sources(sources_from_path(folder), timeout_s=5))
    assert report.kept_from_failed_files == ["stage"]
    assert registry.get("stage").obj is stage_before
    assert report.removed == ["m1_rbv"]  # its file loaded fine without it
    assert registry.names() == ["m1_sp", "stage"]
