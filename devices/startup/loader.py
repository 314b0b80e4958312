"""Executing startup files and collecting the ophyd objects they define.

Files run one after another in one shared namespace (as an IPython startup folder does), each
on a worker thread with a time limit, so a file that hangs is reported with the stack where
it hangs and the others still load. This is blocking code: callers run it off the event loop.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from ophyd import Device, PositionerBase, Signal

from devices.sources.ca_context import attach

from .sources import StartupSource


@dataclass
class FileResult:
    """How one file went: ``error`` holds the traceback when it failed."""

    name: str
    origin: str
    ok: bool
    devices: list[str] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0


@dataclass
class LoadResult:
    objects: dict[str, Any]  # ophyd name -> object
    files: list[FileResult]
    duration_s: float

    @property
    def errors(self) -> dict[str, str]:
        return {f.name: f.error or "" for f in self.files if not f.ok}


def load_sources(sources: list[StartupSource], *, timeout_s: float) -> LoadResult:
    """Run every source; collect top-level ophyd Signals and Devices by their ``.name``.

    Only files that ran to the end contribute objects; see registry.py for what a failed file
    keeps from the previous load.
    """
    started = time.monotonic()
    namespace: dict[str, Any] = {"__name__": "ophydsite_startup"}
    objects: dict[str, Any] = {}
    results: list[FileResult] = []
    for source in sources:
        before = {id(obj) for value in namespace.values() for obj in _ophyd_in(value)}
        result = _run_one(source, namespace, timeout_s)
        if result.error and "did not finish" in result.error:
            namespace = dict(namespace)  # the hung thread keeps the old dict; later files do not see it
        if result.ok:  # a failed file's partial definitions are not registered
            for value in list(namespace.values()):
                for obj in _ophyd_in(value):
                    if id(obj) not in before and getattr(obj, "name", None) and obj.name not in result.devices:
                        objects[obj.name] = obj
                        result.devices.append(obj.name)
                        before.add(id(obj))
        results.append(result)
    return LoadResult(objects=objects, files=results, duration_s=round(time.monotonic() - started, 6))


# What a startup file can define for the registry (a SoftPositioner is neither Signal nor Device).
_OPHYD = (Signal, Device, PositionerBase)


def _ophyd_in(value: Any) -> list[Any]:
    """Top-level ophyd objects, and those held one level down in a list, tuple or dict
    (``motors = [EpicsMotor(...) for ...]`` defines devices too)."""
    if isinstance(value, _OPHYD):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, _OPHYD)]
    return []


def _run_one(source: StartupSource, namespace: dict[str, Any], timeout_s: float) -> FileResult:
    started = time.monotonic()
    outcome: dict[str, str | None] = {"error": None}

    def run() -> None:
        attach()  # ophyd's EpicsSignal creates CA channels in this thread
        try:
            code = compile(source.code, source.origin, "exec")
            exec(code, namespace)  # noqa: S102 - running startup files is this module's job
        except BaseException:  # noqa: BLE001 - SystemExit in a startup file is an error too
            outcome["error"] = traceback.format_exc()

    worker = threading.Thread(target=run, name=f"startup:{source.name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    duration = round(time.monotonic() - started, 6)
    if worker.is_alive():
        frame = sys._current_frames().get(worker.ident or -1)
        where = "".join(traceback.format_stack(frame)) if frame is not None else ""
        error = f"{source.name} did not finish within {timeout_s:g} s; it was at:\n{where}"
        return FileResult(source.name, source.origin, ok=False, error=error, duration_s=duration)
    error = outcome["error"]
    return FileResult(source.name, source.origin, ok=error is None, error=error, duration_s=duration)
