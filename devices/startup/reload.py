"""One reload of the device registry, as the bridge runs it (blocking: call off the loop)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from devices.models import DeviceRecord, StartupFile
from devices.sources.async_plan import describe_tree, is_async_device, library_of
from devices.sources.device_plan import component_tree

from .loader import LoadResult, load_sources
from .registry import DeviceRegistry
from .services import startup_sources


def registry_reload(registry: DeviceRegistry) -> dict[str, Any]:
    """Load every startup file, install the result, record it; returns the JSON reply."""
    close_old_connections()
    try:
        try:
            sources = startup_sources(startup_dir=settings.OAS.startup_dir)
        except FileNotFoundError as exc:
            return {"status": "error", "devices": registry.names(), "errors": {"startup_dir": str(exc)},
                    "duration_s": 0.0}
        result = load_sources(sources, timeout_s=settings.OAS.startup_timeout_s)
        report = registry.apply(result)
        _record(result, registry)
        return {
            "status": "ok" if not result.errors else "partial",
            "devices": registry.names(),
            "loaded": report.loaded,
            "kept_from_failed_files": report.kept_from_failed_files,
            "removed": report.removed,
            "errors": result.errors,
            "files": [{"name": f.name, "origin": f.origin, "ok": f.ok, "devices": f.devices,
                       "duration_s": f.duration_s} for f in result.files],
            "duration_s": result.duration_s,
        }
    finally:
        close_old_connections()


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
            "components": tree, "source": entry.origin, "connected": None})
