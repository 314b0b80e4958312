"""The device registry: ophyd objects by name, and which startup file defined each.

A reload replaces the registry with what the files define now, except that a file which
fails keeps the devices it defined before: a broken edit never takes devices away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .loader import LoadResult


@dataclass(frozen=True)
class RegisteredDevice:
    name: str
    obj: Any
    origin: str  # the startup file that defined it


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)
    kept_from_failed_files: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class DeviceRegistry:
    """One per bridge process."""

    def __init__(self) -> None:
        self._devices: dict[str, RegisteredDevice] = {}

    def get(self, name: str) -> RegisteredDevice | None:
        return self._devices.get(name)

    def names(self) -> list[str]:
        return sorted(self._devices)

    def apply(self, result: LoadResult) -> ReloadReport:
        """Install a load result; see the module docstring for failed files."""
        report = ReloadReport()
        failed = {f.origin for f in result.files if not f.ok}
        fresh: dict[str, RegisteredDevice] = {}
        for file in result.files:
            if not file.ok:
                continue
            for name in file.devices:
                fresh[name] = RegisteredDevice(name, result.objects[name], file.origin)
                report.loaded.append(name)
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
