"""What the device socket streams and sets for one registered ophyd-async object.

The same DevicePlan shapes as device_plan.py gives for ophyd v1, so the bridge and the
clients need not know which library defined a device: a signal streams its value, a movable
(``Motor``, any ``StandardMovable``) its readback (set moves it) with its setpoint and
done-moving signals, any other device every child signal. Stream names follow ophyd v1's
convention (``<device>_<attr>_<attr>``) rather than ophyd-async's ``-`` separator, so a client
written for an ophyd v1 device sees the same names. Pure: reads attributes only (no I/O).
"""

from __future__ import annotations

from typing import Any

from ophyd_async.core import Device, DeviceVector, Signal, SignalR, SignalW, StandardMovable

from devices.channel_layer.topics import device_topic

from .device_plan import MAX_STREAMS, MOTOR_EXTRAS, DevicePlan, Stream

LIBRARY = "ophyd-async"
MAX_DEPTH = 6


def is_async_device(obj: Any) -> bool:
    """Whether ``obj`` is an ophyd-async Device (a Signal is one too)."""
    return isinstance(obj, Device)


def is_movable(obj: Any) -> bool:
    """A device that moves as a whole and has a readback: a Motor, a StandardMovable, or a
    device with ``set`` and a readable ``readback``/``user_readback``."""
    if isinstance(obj, Signal):
        return False
    if isinstance(obj, StandardMovable):
        return True
    return callable(getattr(obj, "set", None)) and any(
        isinstance(getattr(obj, attr, None), SignalR) for attr in ("user_readback", "readback"))


def library_of(obj: Any) -> str:
    return LIBRARY if is_async_device(obj) else "ophyd"


def plan_async_device(name: str, obj: Any) -> DevicePlan:
    """The streams of registered ophyd-async object ``obj`` (registered as ``name``)."""
    streams: list[Stream] = []
    cls = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, Signal):
        streams.append(Stream(name, device_topic(name, name), "", "value"))
        kind = "signal"
    elif is_movable(obj):
        _add_movable(streams, name, obj, "")
        kind = "positioner"
    else:
        _add_children(streams, name, obj, "", 0)
        kind = "device"
    truncated = len(streams) > MAX_STREAMS
    streams = streams[:MAX_STREAMS]
    if kind in ("signal", "positioner"):
        default = streams[0].signal if streams else None
    else:
        default = streams[0].signal if len(streams) == 1 else None
    return DevicePlan(device=name, device_class=cls, kind=kind, streams=tuple(streams),
                      set_default=default, truncated=truncated,
                      components=describe_tree(obj)["components"], prefix="")


def stream_name(device: str, path: str) -> str:
    return f"{device}_{path.replace('.', '_')}" if path else device


def _readback_name(device: str, obj: Any, path: str) -> str:
    """ophyd v1 names a motor's position ``<motor>_user_readback``; other movables their own name."""
    base = stream_name(device, path)
    return f"{base}_user_readback" if isinstance(getattr(obj, "user_readback", None), SignalR) else base


def _add_movable(streams: list[Stream], device: str, obj: Any, path: str) -> None:
    signal = _readback_name(device, obj, path)
    streams.append(Stream(signal, device_topic(device, signal), path, "readback"))
    for extra in MOTOR_EXTRAS:
        child = getattr(obj, extra, None)
        if isinstance(child, Signal):
            sub = f"{path}.{extra}" if path else extra
            streams.append(Stream(stream_name(device, sub), device_topic(device, stream_name(device, sub)),
                                  sub, "value"))


def _add_children(streams: list[Stream], device: str, obj: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    for attr, child in obj.children():
        if len(streams) > MAX_STREAMS:
            return
        sub = f"{path}.{attr}" if path else attr
        if isinstance(child, Signal):
            if isinstance(child, (SignalR, SignalW)):  # a SignalX has no value to stream
                signal = stream_name(device, sub)
                streams.append(Stream(signal, device_topic(device, signal), sub, "value"))
        elif is_movable(child):
            _add_movable(streams, device, child, sub)
        else:
            _add_children(streams, device, child, sub, depth + 1)


def resolve_async(obj: Any, path: str) -> Any:
    """The object at dotted ``path`` below ``obj`` (DeviceVector keys are integers);
    AttributeError if there is none."""
    for part in filter(None, path.split(".")):
        if isinstance(obj, DeviceVector) and part.lstrip("-").isdigit():
            try:
                obj = obj[int(part)]
            except KeyError:
                raise AttributeError(part) from None
        else:
            obj = getattr(obj, part)
    return obj


def describe_tree(obj: Any) -> dict[str, Any]:
    """For the admin: the library, class and component tree (attribute, name, class, PV source,
    kind) of an ophyd-async object."""
    return {"library": LIBRARY, "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "name": getattr(obj, "name", ""), "components": _tree(obj, 0)}


def _tree(obj: Any, depth: int) -> list[dict[str, Any]]:
    if depth > MAX_DEPTH or isinstance(obj, Signal):
        return []
    nodes: list[dict[str, Any]] = []
    for attr, child in obj.children():
        node: dict[str, Any] = {"attr": attr, "name": child.name or attr, "class": type(child).__name__,
                                "kind": _kind(child)}
        if isinstance(child, Signal):
            try:
                source = child.source
            except Exception:  # noqa: BLE001 - a backend may not know it before connecting
                source = ""
            if source:
                node["pv"] = source
        children = _tree(child, depth + 1)
        if children:
            node["children"] = children
        nodes.append(node)
    return nodes


def _kind(obj: Any) -> str:
    if isinstance(obj, SignalR) and isinstance(obj, SignalW):
        return "signal_rw"
    if isinstance(obj, SignalR):
        return "signal_r"
    if isinstance(obj, SignalW):
        return "signal_w"
    if isinstance(obj, Signal):
        return "signal_x"
    return "movable" if is_movable(obj) else "device"
