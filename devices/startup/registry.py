"""The device registry: ophyd objects by name, and where each came from.

A reload replaces the registry with what the files define now, except that a file which
fails keeps the devices it defined before: a broken edit never takes devices away. Devices
from the Queue Server's startup code (OAS_QSERVER_DEVICES) are kept only where the Queue
Server allows them; when it cannot be asked, the last good set of them stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .loader import LoadResult

QSERVER = "qserver"  # the kind of a device taken from the Queue Server


@dataclass(frozen=True)
class RegisteredDevice:
    name: str
    obj: Any
    origin: str  # the startup file that defined it
    kind: str = "folder"  # folder | database | qserver
    qserver_allowed: bool | None = None  # None: not following a Queue Server, or it was not asked


@dataclass(frozen=True)
class QserverPart:
    """The Queue Server's share of a reload: its allowed names (None: it could not be asked)
    and the load of its startup code (None when not run)."""

    allowed: frozenset[str] | None
    result: LoadResult | None


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)
    kept_from_failed_files: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_allowed: list[str] = field(default_factory=list)  # in its startup code, not allowed by the Queue Server
    kept_from_qserver: list[str] = field(default_factory=list)  # last good: the Queue Server was not asked
    clashes: dict[str, str] = field(default_factory=dict)  # name -> the startup file whose device lost


class DeviceRegistry:
    """One per bridge process."""

    def __init__(self) -> None:
        self._devices: dict[str, RegisteredDevice] = {}

    def get(self, name: str) -> RegisteredDevice | None:
        return self._devices.get(name)

    def names(self) -> list[str]:
        return sorted(self._devices)

    def apply(self, result: LoadResult, qserver: QserverPart | None = None) -> ReloadReport:
        """Install a load result (and the Queue Server's share); see the module docstring."""
        report = ReloadReport()
        failed = {f.origin for f in result.files if not f.ok}
        fresh: dict[str, RegisteredDevice] = {}
        for file in result.files:
            if not file.ok:
                continue
            for name in file.devices:
                fresh[name] = RegisteredDevice(name, result.objects[name], file.origin, file.kind)
                report.loaded.append(name)
        if qserver is not None and qserver.allowed is None:
            self._keep_last_qserver(fresh, report)
        elif qserver is not None:
            failed |= self._apply_qserver(qserver, fresh, report)
        for old in self._devices.values():
            if old.name in fresh:
                continue
            if old.origin in failed:
                fresh[old.name] = old
                report.kept_from_failed_files.append(old.name)
            else:
                report.removed.append(old.name)
        self._devices = fresh
        return report

    def _keep_last_qserver(self, fresh: dict[str, RegisteredDevice], report: ReloadReport) -> None:
        """The Queue Server could not be asked: its devices of the last good answer stay, and
        still win a clash with ours."""
        for old in self._devices.values():
            if old.kind != QSERVER:
                continue
            if old.name in fresh:
                report.clashes[old.name] = fresh[old.name].origin
                report.loaded.remove(old.name)
            fresh[old.name] = old
            report.kept_from_qserver.append(old.name)

    @staticmethod
    def _apply_qserver(part: QserverPart, fresh: dict[str, RegisteredDevice], report: ReloadReport) -> set[str]:
        """Add the allowed devices of the Queue Server's startup code to ``fresh`` (they win a
        name clash) and mark every other device allowed or not; returns its failed files."""
        allowed, result = part.allowed, part.result
        if allowed is None or result is None:
            return set()
        for name, entry in list(fresh.items()):
            fresh[name] = replace(entry, qserver_allowed=name in allowed)
        for file in result.files:
            if not file.ok:
                continue
            for name in file.devices:
                if name not in allowed and file.variables.get(name, name) not in allowed:
                    report.not_allowed.append(name)
                    continue
                if name in fresh:
                    report.clashes[name] = fresh[name].origin
                    report.loaded.remove(name)
                fresh[name] = RegisteredDevice(name, result.objects[name], file.origin, QSERVER, True)
                report.loaded.append(name)
        return {f.origin for f in result.files if not f.ok}
