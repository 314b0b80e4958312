"""What the device socket streams and sets for one registered ophyd object.

ophyd-websocket streams a Signal's own value, a positioner's readback, and every signal of
a custom Device; this module turns an object into that list of streams (each a bridge
topic) once, in the bridge, so the worker processes never need the ophyd object.
Runs in the bridge only; pure apart from reading ophyd attributes (no CA calls).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ophyd import Device, PositionerBase, PseudoPositioner, Signal

from devices.channel_layer.topics import device_topic

# Streams per device: an area detector has thousands of signals; a browser wants a few.
MAX_STREAMS = 200
# Extra signals streamed for an EpicsMotor besides its readback (attribute names).
MOTOR_EXTRAS = ("user_setpoint", "motor_done_move")


@dataclass(frozen=True)
class Stream:
    """One signal of a device as a bridge topic."""

    signal: str  # the ophyd name clients see in "signal"
    topic: str
    path: str  # dotted attribute path from the device ("" for the device itself)
    role: str  # "value": a Signal's value; "readback": a positioner's position (sets move it)


@dataclass(frozen=True)
class DevicePlan:
    device: str
    device_class: str
    kind: str  # "signal" | "positioner" | "pseudo" | "device"
    streams: tuple[Stream, ...]
    set_default: str | None  # the signal a set without "signal" goes to
    truncated: bool = False
    components: list[dict[str, Any]] = field(default_factory=list)
    prefix: str = ""  # the device's PV prefix, when it has one

    def stream(self, signal: str) -> Stream | None:
        return next((s for s in self.streams if s.signal == signal), None)

    def component(self, name: str) -> Stream | None:
        """The stream a REST ``component`` names: an attribute path (``user_setpoint``,
        ``x.readback``) or an ophyd signal name (``motor1_user_setpoint``)."""
        return (next((s for s in self.streams if s.path == name), None) or self.stream(name)
                or self.stream(f"{self.device}_{name.replace('.', '_')}"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DevicePlan:
        streams = tuple(Stream(**s) for s in data["streams"])
        return cls(**{**data, "streams": streams})


def plan_device(name: str, obj: Any) -> DevicePlan:
    """The streams of registered object ``obj`` (registered as ``name``)."""
    streams: list[Stream] = []
    cls = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, Signal):
        streams.append(Stream(obj.name, device_topic(name, obj.name), "", "value"))
        kind = "signal"
    elif isinstance(obj, PseudoPositioner):
        for path in [*obj.PseudoPosition._fields, *obj.RealPosition._fields]:
            _add_positioner(streams, name, getattr(obj, path), path)
        kind = "pseudo"
    elif isinstance(obj, PositionerBase):
        _add_positioner(streams, name, obj, "")
        kind = "positioner"
    else:
        _add_children(streams, name, obj, "")
        kind = "device"
    truncated = len(streams) > MAX_STREAMS
    streams = streams[:MAX_STREAMS]
    default = _set_default(obj, kind, streams)
    return DevicePlan(device=name, device_class=cls, kind=kind, streams=tuple(streams),
                      set_default=default, truncated=truncated, components=component_tree(obj),
                      prefix=prefix if isinstance(prefix := getattr(obj, "prefix", ""), str) else "")


def _set_default(obj: Any, kind: str, streams: list[Stream]) -> str | None:
    if kind in ("signal", "positioner"):
        return streams[0].signal if streams else None
    if kind == "pseudo":
        pseudo = [s for s in streams if s.path in obj.PseudoPosition._fields]
        return pseudo[0].signal if len(pseudo) == 1 else None
    return streams[0].signal if len(streams) == 1 else None


def _readback_name(positioner: Any) -> str:
    """The name clients see for a positioner's position.

    ophyd names a motor's hinted readback after the motor itself; ophyd-websocket documents
    ``motor1_user_readback``, so a positioner with a ``user_readback`` component reports that,
    and any other positioner (pseudo axis, soft positioner) its own name.
    """
    if isinstance(getattr(positioner, "user_readback", None), Signal):
        return f"{positioner.name}_user_readback"
    return positioner.name


def _add_positioner(streams: list[Stream], device: str, positioner: Any, path: str) -> None:
    signal = _readback_name(positioner)
    streams.append(Stream(signal, device_topic(device, signal), path, "readback"))
    for extra in MOTOR_EXTRAS:
        child = getattr(positioner, extra, None)
        if isinstance(child, Signal) and extra in getattr(positioner, "component_names", ()):
            sub = f"{path}.{extra}" if path else extra
            streams.append(Stream(child.name, device_topic(device, child.name), sub, "value"))


def _add_children(streams: list[Stream], device: str, obj: Any, path: str) -> None:
    for attr in getattr(obj, "component_names", ()):
        if len(streams) > MAX_STREAMS:
            return
        child = getattr(obj, attr)
        sub = f"{path}.{attr}" if path else attr
        if isinstance(child, PositionerBase):
            _add_positioner(streams, device, child, sub)
        elif isinstance(child, Device):
            _add_children(streams, device, child, sub)
        elif isinstance(child, Signal):
            streams.append(Stream(child.name, device_topic(device, child.name), sub, "value"))


def resolve(obj: Any, path: str) -> Any:
    """The object at dotted ``path`` below ``obj``; AttributeError if there is none."""
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part)
    return obj


def component_tree(obj: Any, depth: int = 0) -> list[dict[str, Any]]:
    """Components of ``obj`` as nested dicts (attribute, ophyd name, class, PV, kind)."""
    if depth > 6:
        return []
    tree: list[dict[str, Any]] = []
    for attr in getattr(obj, "component_names", ()):
        child = getattr(obj, attr)
        node: dict[str, Any] = {
            "attr": attr, "name": getattr(child, "name", attr), "class": type(child).__name__,
            "kind": getattr(getattr(child, "kind", None), "name", None),
        }
        pv = getattr(child, "pvname", None)
        if isinstance(pv, str):
            node["pv"] = pv
        children = component_tree(child, depth + 1)
        if children:
            node["children"] = children
        tree.append(node)
    return tree
