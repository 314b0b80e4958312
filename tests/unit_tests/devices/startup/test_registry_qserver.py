"""The registry's Queue Server share: allowed devices only, clashes, the last good set."""

from ophyd import Signal

from devices.startup.loader import FileResult, LoadResult
from devices.startup.registry import DeviceRegistry, QserverPart


def _load(origin: str, kind: str, *names: str, ok: bool = True) -> LoadResult:
    objects = {n: Signal(name=n) for n in names}
    file = FileResult(origin, origin, ok=ok, devices=list(names) if ok else [], kind=kind,
                      variables={n: f"var_{n}" if n == "renamed" else n for n in names},
                      error=None if ok else "boom")
    return LoadResult(objects=objects if ok else {}, files=[file], duration_s=0.0)


def test_only_allowed_devices_of_the_queue_server_are_registered_and_ours_are_marked():
    registry = DeviceRegistry()
    ours = _load("10_ours.py", "folder", "a", "b")
    theirs = _load("/qs/00.py", "qserver", "det", "motor", "secret", "renamed")
    report = registry.apply(ours, QserverPart(frozenset({"det", "motor", "a", "var_renamed"}), theirs))
    assert registry.names() == ["a", "b", "det", "motor", "renamed"]
    assert report.not_allowed == ["secret"]
    assert registry.get("det").kind == "qserver" and registry.get("det").qserver_allowed is True
    assert registry.get("a").qserver_allowed is True and registry.get("b").qserver_allowed is False
    assert registry.get("renamed").qserver_allowed is True  # allowed by the variable's name


def test_a_name_clash_is_reported_and_the_queue_servers_device_wins():
    registry = DeviceRegistry()
    ours = _load("10_ours.py", "folder", "motor")
    theirs = _load("/qs/00.py", "qserver", "motor")
    report = registry.apply(ours, QserverPart(frozenset({"motor"}), theirs))
    assert report.clashes == {"motor": "10_ours.py"}
    assert registry.get("motor").origin == "/qs/00.py" and registry.get("motor").obj is theirs.objects["motor"]
    assert report.loaded == ["motor"]


def test_when_the_queue_server_cannot_be_asked_its_last_good_devices_stay():
    registry = DeviceRegistry()
    registry.apply(_load("10_ours.py", "folder", "a"), QserverPart(frozenset({"det"}),
                                                                    _load("/qs/00.py", "qserver", "det")))
    report = registry.apply(_load("10_ours.py", "folder", "a"), QserverPart(None, None))
    assert registry.names() == ["a", "det"]
    assert report.kept_from_qserver == ["det"] and report.removed == []


def test_a_kept_device_of_the_queue_server_still_wins_a_clash_with_ours():
    registry = DeviceRegistry()
    theirs = _load("/qs/00.py", "qserver", "motor")
    registry.apply(_load("10_ours.py", "folder", "motor"), QserverPart(frozenset({"motor"}), theirs))
    report = registry.apply(_load("10_ours.py", "folder", "motor"), QserverPart(None, None))
    assert registry.get("motor").obj is theirs.objects["motor"]
    assert report.kept_from_qserver == ["motor"] and report.clashes == {"motor": "10_ours.py"}


def test_a_device_no_longer_allowed_is_removed():
    registry = DeviceRegistry()
    registry.apply(_load("10_ours.py", "folder"), QserverPart(frozenset({"det", "motor"}),
                                                              _load("/qs/00.py", "qserver", "det", "motor")))
    report = registry.apply(_load("10_ours.py", "folder"), QserverPart(frozenset({"det"}),
                                                                       _load("/qs/00.py", "qserver", "det", "motor")))
    assert registry.names() == ["det"] and report.removed == ["motor"]


def test_a_failed_queue_server_file_keeps_its_previous_devices():
    registry = DeviceRegistry()
    registry.apply(_load("10_ours.py", "folder"), QserverPart(frozenset({"det"}),
                                                              _load("/qs/00.py", "qserver", "det")))
    report = registry.apply(_load("10_ours.py", "folder"), QserverPart(frozenset({"det"}),
                                                                       _load("/qs/00.py", "qserver", "det", ok=False)))
    assert registry.names() == ["det"] and report.kept_from_failed_files == ["det"]


def test_without_a_queue_server_nothing_is_marked():
    registry = DeviceRegistry()
    registry.apply(_load("10_ours.py", "folder", "a"))
    assert registry.get("a").qserver_allowed is None and registry.get("a").kind == "folder"
