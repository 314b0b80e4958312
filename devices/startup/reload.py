"""One reload of the device registry, as the bridge runs it (blocking: call off the loop)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from devices.models import DeviceRecord, QserverRegistryState, StartupFile
from devices.sources.async_plan import describe_tree, is_async_device, library_of
from devices.sources.device_plan import component_tree

from .loader import FileResult, LoadResult, load_sources
from .qserver_source import QserverAsk, qserver_share
from .registry import DeviceRegistry, ReloadReport
from .services import startup_sources


def registry_reload(registry: DeviceRegistry) -> dict[str, Any]:
    """Load every startup file (and the Queue Server's devices when followed), install the
    result, record it; returns the JSON reply."""
    oas = settings.OAS
    close_old_connections()
    try:
        try:
            sources = [] if oas.qserver_devices == "only" else startup_sources(startup_dir=oas.startup_dir)
        except FileNotFoundError as exc:
            return {"status": "error", "devices": registry.names(), "errors": {"startup_dir": str(exc)},
                    "duration_s": 0.0}
        result = load_sources(sources, timeout_s=oas.startup_timeout_s, connect_timeout_s=oas.async_connect_timeout_s)
        asked = qserver_share(oas) if oas.qserver_devices else None
        report = registry.apply(result, asked.part if asked else None)
        _record(result, registry)
        errors = dict(result.errors)
        reply: dict[str, Any] = {"loaded": report.loaded, "kept_from_failed_files": report.kept_from_failed_files,
                                 "removed": report.removed, "files": [_file(f) for f in result.files]}
        if asked is not None:
            errors.update(_qserver_errors(asked, report))
            reply["qserver"] = _qserver_reply(asked, report)
            _record_qserver(reply["qserver"])
        return {"status": "ok" if not errors else "partial", "devices": registry.names(), **reply,
                "errors": errors, "duration_s": round(result.duration_s + _qserver_duration(asked), 6)}
    finally:
        close_old_connections()


def _file(f: FileResult) -> dict[str, Any]:
    return {"name": f.name, "origin": f.origin, "ok": f.ok, "devices": f.devices, "duration_s": f.duration_s,
            **({"notes": f.notes} if f.notes else {})}


def _qserver_duration(asked: QserverAsk | None) -> float:
    return asked.part.result.duration_s if asked is not None and asked.part.result is not None else 0.0


def _qserver_errors(asked: QserverAsk, report: ReloadReport) -> dict[str, str]:
    errors: dict[str, str] = {}
    if asked.answer.error:
        kept = f"; kept the last good devices from it: {', '.join(report.kept_from_qserver) or 'none'}"
        errors["qserver"] = f"the Queue Server's devices could not be had ({asked.answer.error}){kept}"
    if asked.part.result is not None:
        errors.update({f"qserver {name}": why for name, why in asked.part.result.errors.items()})
    for name, ours in report.clashes.items():
        errors[f"device {name}"] = (f"defined by {ours} and by the Queue Server's startup code; "
                                    "the Queue Server's is used")
    return errors


def _qserver_reply(asked: QserverAsk, report: ReloadReport) -> dict[str, Any]:
    oas = settings.OAS
    answer = asked.answer
    files = asked.part.result.files if asked.part.result is not None else []
    return {"mode": oas.qserver_devices, "group": answer.group, "ok": answer.ok, "error": answer.error,
            "how": answer.how, "allowed": sorted(answer.allowed or ()), "not_allowed": sorted(report.not_allowed),
            "kept": report.kept_from_qserver, "clashes": report.clashes,
            "key": list(answer.key) if answer.key is not None else None,
            "files": [_file(f) for f in files]}


def _record_qserver(state: dict[str, Any]) -> None:
    """The admin's view of the last ask; on failure the last good lists stay as they were."""
    now = timezone.now()
    values: dict[str, Any] = {"mode": state["mode"], "user_group": state["group"], "ok": state["ok"],
                              "error": state["error"] or "", "asked_at": now}
    if state["ok"]:
        values.update(how=state["how"], last_good_at=now, allowed=state["allowed"],
                      not_allowed=state["not_allowed"], clashes=state["clashes"], files=state["files"])
    QserverRegistryState.objects.update_or_create(pk=1, defaults=values)


@transaction.atomic
def _record(result: LoadResult, registry: DeviceRegistry) -> None:
    """Load status on the database files; the device list the admin shows."""
    now = timezone.now()
    for file in result.files:
        if file.origin.startswith("db:"):
            StartupFile.objects.filter(name=file.name).update(
                last_load_status=StartupFile.LoadStatus.OK if file.ok else StartupFile.LoadStatus.ERROR,
                last_load_error=file.error or "", last_loaded_at=now, devices=file.devices)
    DeviceRecord.objects.exclude(name__in=registry.names()).delete()
    for name in registry.names():
        entry = registry.get(name)
        assert entry is not None
        obj = entry.obj
        tree = describe_tree(obj)["components"] if is_async_device(obj) else component_tree(obj)
        DeviceRecord.objects.update_or_create(name=name, defaults={
            "device_class": f"{type(obj).__module__}.{type(obj).__qualname__}", "library": library_of(obj),
            "components": tree, "source": entry.origin, "origin_kind": entry.kind,
            "qserver_allowed": entry.qserver_allowed, "connected": None})
