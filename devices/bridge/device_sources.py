"""Sources for device topics: the registry's ophyd objects behind the bridge interface.

A device topic names a device and one of its signals (devices/topics.py). The bridge asks
this factory for a Source when a client first wants that topic, and again after a reload,
so a subscription follows the device to the new object.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from devices.channel_layer.topics import parse_device_topic
from devices.sources.async_plan import is_async_device, plan_async_device, resolve_async
from devices.sources.async_sources import async_source_for
from devices.sources.device_plan import DevicePlan, plan_device, resolve
from devices.sources.ophyd_source import OphydSignalSource
from devices.sources.positioner_source import PositionerSource
from devices.sources.source import ChannelInfo, PutCallback, Source, SourceSink
from devices.startup.registry import DeviceRegistry


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
        plan = plan_async_device(device, entry.obj) if is_async_device(entry.obj) else plan_device(device, entry.obj)
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
            walk = resolve_async if is_async_device(entry.obj) else resolve
            return walk(entry.obj, stream.path), stream.role
        except (AttributeError, KeyError, IndexError):
            return f"Device {device} has no component {stream.path}"


class DeviceTopicSource:
    """A device topic's Source: finds its ophyd object in ``open``, off the event loop.

    Planning a device reads ophyd attributes, and an ophyd Device creates lazy components
    (new EPICS channels) when they are first read: that must happen on a thread attached to
    the CA context, like every other call into a source, never on the bridge's loop.
    """

    def __init__(self, plans: DevicePlans, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink) -> None:
        self.name = name
        self._plans = plans
        self._loop = loop
        self._sink = sink
        self._inner: Any = MissingSource(name, f"{name} is being opened")
        self._lock = threading.Lock()
        self._closed = False
        self.obj: Any = None  # the ophyd object streamed; a reload that changes it rebinds the topic

    def open(self) -> None:
        with self._lock:
            if self._closed:
                return
            found = self._plans.target(self.name)
            if isinstance(found, str):
                self._inner = MissingSource(self.name, found)
                return
            obj, role = found
            if is_async_device(obj):
                self._inner = async_source_for(self.name, self._loop, self._sink, obj, role)
            else:
                source_class = PositionerSource if role == "readback" else OphydSignalSource
                self._inner = source_class(self.name, self._loop, self._sink, obj)
            self.obj = obj
            self._inner.open()

    def info(self, timeout: float) -> ChannelInfo | None:
        return self._inner.info(timeout)

    def put(self, value: Any, done: PutCallback) -> None:
        self._inner.put(value, done)

    def stop(self) -> None:
        stop = getattr(self._inner, "stop", None)
        if stop is None:
            raise TypeError(f"{self.name} is not a positioner")
        stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._inner.close()


def device_source(plans: DevicePlans, topic: str, loop: asyncio.AbstractEventLoop, sink: SourceSink) -> Source:
    """The Source for a device topic; it resolves the registry's object when opened."""
    return DeviceTopicSource(plans, topic, loop, sink)
