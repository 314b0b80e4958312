"""Sources for device topics: the registry's ophyd objects behind the bridge interface.

A device topic names a device and one of its signals (devices/topics.py). The bridge asks
this factory for a Source when a client first wants that topic, and again after a reload,
so a subscription follows the device to the new object.
"""

from __future__ import annotations

import asyncio
from typing import Any

from devices.startup.registry import DeviceRegistry
from devices.topics import parse_device_topic

from .device_plan import DevicePlan, plan_device, resolve
from .ophyd_source import OphydSignalSource
from .positioner_source import PositionerSource
from .source import ChannelInfo, PutCallback, Source, SourceSink


class MissingSource:
    """A topic whose device or signal is not in the registry: never connects."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        self.obj: Any = None

    def open(self) -> None:
        pass

    def info(self, timeout: float) -> ChannelInfo | None:
        return None

    def put(self, value: Any, done: PutCallback) -> None:
        raise ConnectionError(self.why)

    def close(self) -> None:
        pass


class DevicePlans:
    """Plans of the registered objects, computed once per object (the registry changes on reload)."""

    def __init__(self, registry: DeviceRegistry) -> None:
        self._registry = registry
        self._plans: dict[str, tuple[Any, DevicePlan]] = {}

    def plan(self, device: str) -> DevicePlan | None:
        entry = self._registry.get(device)
        if entry is None:
            self._plans.pop(device, None)
            return None
        cached = self._plans.get(device)
        if cached is not None and cached[0] is entry.obj:
            return cached[1]
        plan = plan_device(device, entry.obj)
        self._plans[device] = (entry.obj, plan)
        return plan

    def target(self, topic: str) -> tuple[Any, str] | str:
        """``(object, role)`` a topic streams now, or why it cannot be resolved."""
        parsed = parse_device_topic(topic)
        if parsed is None:
            return f"{topic!r} is not a device topic"
        device, signal = parsed
        plan = self.plan(device)
        if plan is None:
            return f"Device {device} is not in the device registry"
        stream = plan.stream(signal)
        if stream is None:
            return f"Device {device} has no signal {signal}"
        entry = self._registry.get(device)
        assert entry is not None
        try:
            return resolve(entry.obj, stream.path), stream.role
        except AttributeError:
            return f"Device {device} has no component {stream.path}"


def device_source(plans: DevicePlans, topic: str, loop: asyncio.AbstractEventLoop, sink: SourceSink) -> Source:
    """The Source for a device topic (a MissingSource if the registry does not resolve it)."""
    found = plans.target(topic)
    if isinstance(found, str):
        return MissingSource(topic, found)
    obj, role = found
    source: Any
    if role == "readback":
        source = PositionerSource(topic, loop, sink, obj)
    else:
        source = OphydSignalSource(topic, loop, sink, obj)
    source.obj = obj
    return source
