"""Executing startup files and collecting the ophyd objects they define.

Files run one after another in one shared namespace (as an IPython startup folder does), each
on a worker thread with a time limit, so a file that hangs is reported with the stack where
it hangs and the others still load. This is blocking code: callers run it off the event loop.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from ophyd import Device, PositionerBase, Signal
from ophyd_async.core import Device as AsyncDevice

from devices.sources.async_plan import is_async_device
from devices.sources.async_runtime import connect_devices_blocking, runtime
from devices.sources.ca_context import attach

from .profile_compat import InertRunEngine, InertShell, inert_run_engine, without_magics
from .sources import StartupSource


@dataclass
class FileResult:
    """How one file went: ``error`` holds the traceback when it failed."""

    name: str
    origin: str
    ok: bool
    devices: list[str] = field(default_factory=list)
    kind: str = "folder"  # the source's: folder | database | qserver
    variables: dict[str, str] = field(default_factory=dict)  # device name -> the variable holding it
    error: str | None = None
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # what was skipped (IPython magics, RunEngines)


@dataclass
class LoadResult:
    objects: dict[str, Any]  # ophyd name -> object
    files: list[FileResult]
    duration_s: float
    # ophyd-async devices that did not connect: left out of ``objects``, by device name
    connect_errors: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> dict[str, str]:
        failed = {f.name: f.error or "" for f in self.files if not f.ok}
        return {**failed, **{f"device {name}": why for name, why in self.connect_errors.items()}}


DEFAULT_ASYNC_CONNECT_TIMEOUT_S = 10.0  # OAS_ASYNC_CONNECT_TIMEOUT_S


def load_sources(sources: list[StartupSource], *, timeout_s: float,
                 connect_timeout_s: float = DEFAULT_ASYNC_CONNECT_TIMEOUT_S) -> LoadResult:
    """Run every source; collect top-level ophyd Signals and Devices by their ``.name``
    (ophyd-async ones connected within ``connect_timeout_s``, and at most ``timeout_s``).

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
            for variable, value in list(namespace.items()):
                for obj in _ophyd_in(value):
                    _name_async(obj, variable)
                    if id(obj) not in before and getattr(obj, "name", None) and obj.name not in result.devices:
                        objects[obj.name] = obj
                        result.devices.append(obj.name)
                        result.variables[obj.name] = variable
                        before.add(id(obj))
        results.append(result)
    connect_errors = _connect_async(objects, results, min(timeout_s, connect_timeout_s))
    return LoadResult(objects=objects, files=results, duration_s=round(time.monotonic() - started, 6),
                      connect_errors=connect_errors)


def _name_async(obj: Any, variable: str) -> None:
    """An ophyd-async device defined without a name (``m1 = Motor("X:")``) takes its
    variable's, as ``init_devices`` would give it; ophyd v1 objects always have one."""
    if is_async_device(obj) and not obj.name and variable.isidentifier():
        obj.set_name(variable)


def _connect_async(objects: dict[str, Any], results: list[FileResult], timeout_s: float) -> dict[str, str]:
    """Connect the ophyd-async devices the files defined, all at once, in the ophyd-async
    runtime (ophyd v1 objects connect by themselves). One that fails is reported with its
    reason and left out; the others load."""
    pending = {name: obj for name, obj in objects.items() if is_async_device(obj)}
    if not pending:
        return {}
    outcomes = connect_devices_blocking(pending, timeout=timeout_s)
    errors = {name: outcome.error or "did not connect" for name, outcome in outcomes.items() if not outcome.ok}
    for name in errors:
        del objects[name]
        for result in results:
            if name in result.devices:
                result.devices.remove(name)
    return errors


# What a startup file can define for the registry (a SoftPositioner is neither Signal nor
# Device; an ophyd-async Device, Signals included, is a Device of its own library).
_OPHYD = (Signal, Device, PositionerBase, AsyncDevice)


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
    text, notes = source.code, []
    profile = source.kind == "qserver"
    if profile:  # the RE Manager's startup code: an IPython profile that builds a RunEngine
        text, notes = without_magics(text)
        shell = InertShell(notes)
        namespace["get_ipython"] = lambda: shell
        namespace["__file__"] = source.origin
    engines_before = {id(v) for v in namespace.values() if isinstance(v, InertRunEngine)}

    runtime().loop()  # ophyd-async's loop runs (as bluesky's) before a file's ``init_devices``

    def run() -> None:
        attach()  # ophyd's EpicsSignal creates CA channels in this thread
        try:
            code = compile(text, source.origin, "exec")
            exec(code, namespace)  # noqa: S102 - running startup files is this module's job
        except BaseException:  # noqa: BLE001 - SystemExit in a startup file is an error too
            outcome["error"] = traceback.format_exc()

    worker = threading.Thread(target=run, name=f"startup:{source.name}", daemon=True)
    with inert_run_engine() if profile else contextlib.nullcontext():
        worker.start()
        worker.join(timeout_s)
    duration = round(time.monotonic() - started, 6)
    if worker.is_alive():
        frame = sys._current_frames().get(worker.ident or -1)
        where = "".join(traceback.format_stack(frame)) if frame is not None else ""
        error = f"{source.name} did not finish within {timeout_s:g} s; it was at:\n{where}"
        return FileResult(source.name, source.origin, ok=False, error=error, duration_s=duration, notes=notes,
                          kind=source.kind)
    notes += [f"{variable} = RunEngine(...) kept as configuration only; not started (the RE Manager runs plans)"
              for variable, value in list(namespace.items())
              if isinstance(value, InertRunEngine) and id(value) not in engines_before]
    error = outcome["error"]
    return FileResult(source.name, source.origin, ok=error is None, error=error, duration_s=duration, notes=notes,
                      kind=source.kind)
