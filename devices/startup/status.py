"""The admin's live device list: connection states the bridge writes when they change.

The admin runs in a web request and never touches ophyd objects; the bridge reads each
registered object's ``connected`` (cached ophyd state, no CA round trip) every few seconds
and writes only the rows whose state changed. Blocking: the bridge calls this off its loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import close_old_connections
from django.utils import timezone

from devices.models import DeviceRecord
from devices.sources.async_plan import is_async_device

from .registry import DeviceRegistry

log = logging.getLogger(__name__)


def device_states(registry: DeviceRegistry, owned: Callable[[str], bool] = lambda _: True) -> dict[str, bool]:
    """Whether every signal of each registered device (the ``owned`` ones) is connected now."""
    states: dict[str, bool] = {}
    for name in registry.names():
        entry = registry.get(name) if owned(name) else None
        if entry is None:
            continue
        try:
            # ophyd-async devices are registered once connected and report no disconnects
            states[name] = True if is_async_device(entry.obj) else bool(entry.obj.connected)
        except Exception:  # noqa: BLE001 - a broken device reads as not connected
            states[name] = False
    return states


def device_states_record(*, states: dict[str, bool], previous: dict[str, bool]) -> dict[str, bool]:
    """Write the states that differ from ``previous``; returns what the database now holds."""
    changed = {n: s for n, s in states.items() if previous.get(n) != s}
    if not changed:
        return previous
    close_old_connections()
    try:
        now = timezone.now()
        for state in (True, False):
            names = [n for n, s in changed.items() if s is state]
            if names:
                DeviceRecord.objects.filter(name__in=names).update(connected=state, state_at=now)
    finally:
        close_old_connections()
    return {**previous, **changed}
