"""Normative types (NTScalar, NTScalarArray, NTEnum) as the bridge's events: pure functions
of a raw p4p ``Value`` (a client with ``nt=False``; p4p's own unwrapping caches enum choices
per context and mixes them up between PVs).

A structure of any other type maps to ``ChannelInfo(kind="unsupported", count=0)`` with
``extra["error"]`` saying why and ``extra["type_id"]`` naming its type: the source sends no
values for it and refuses puts with that message, so the bridge can answer with the error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .source import UNSUPPORTED, ChannelInfo, PropertyEvent, ValueEvent

NT_SCALAR = "epics:nt/NTScalar:"
NT_SCALAR_ARRAY = "epics:nt/NTScalarArray:"
NT_ENUM = "epics:nt/NTEnum:"

_KINDS = {"d": "float", "f": "float", "s": "string", "?": "int"}  # every other code is an integer
_FORMAT_PRECISION = re.compile(r"%[-+ #0]*\d*\.(\d+)[eEfFgG]")


def nt_family(value: Any) -> str | None:
    """"scalar", "array" or "enum" for the normative types mapped here, else None."""
    type_id = value.getID()
    if type_id.startswith(NT_ENUM):
        return "enum" if _has(value, "value.index") and _has(value, "value.choices") else None
    if type_id.startswith(NT_SCALAR_ARRAY):
        return "array" if _code(value).startswith("a") else None
    if type_id.startswith(NT_SCALAR):
        code = _code(value)
        return "scalar" if code and not code.startswith("a") else None
    return None


def unsupported_reason(value: Any) -> str | None:
    """Why a structure cannot be served as a PV value, or None when it can."""
    if nt_family(value) is not None:
        return None
    return (f"a structure of type {value.getID()!r} is not a normative type that this server maps "
            "(NTScalar, NTScalarArray, NTEnum)")


def channel_info(value: Any) -> ChannelInfo:
    """Kind, element count and control metadata of the PV that sent ``value``."""
    family = nt_family(value)
    type_id = value.getID()
    if family is None:
        return ChannelInfo(kind=UNSUPPORTED, count=0,
                           extra={"type_id": type_id, "error": unsupported_reason(value)})
    prop = property_event(value)
    if family == "enum":
        kind, count = "enum", 1
    else:
        kind = _KINDS.get(_code(value)[-1:], "int")
        count = len(value["value"]) if family == "array" else 1
    return ChannelInfo(kind=kind, count=count, units=prop.units, precision=prop.precision,
                       lower_ctrl_limit=prop.lower_ctrl_limit, upper_ctrl_limit=prop.upper_ctrl_limit,
                       enum_strs=prop.enum_strs, extra={"type_id": type_id})


def value_event(value: Any, enum: bool = False) -> ValueEvent:
    """The value (an enum's index; arrays as p4p gives them: numpy arrays, or lists of
    strings), its timestamp (Unix seconds) and alarm. Runs for every update: field reads only."""
    data = value["value.index"] if enum else value["value"]
    if type(data) is bool:
        data = int(data)  # as CA would give it
    seconds = value.get("timeStamp.secondsPastEpoch")
    nanoseconds = value.get("timeStamp.nanoseconds") or 0
    timestamp = None if not seconds and not nanoseconds else seconds + nanoseconds * 1e-9
    return ValueEvent(data, timestamp, value.get("alarm.severity"), value.get("alarm.status"))


def property_event(value: Any) -> PropertyEvent:
    """Units, precision, control limits (display limits where no control limits are set)
    and an enum's choices."""
    if value.getID().startswith(NT_ENUM):
        choices = value.get("value.choices") or []
        return PropertyEvent(units=_text(value.get("display.units")), precision=None,
                             lower_ctrl_limit=None, upper_ctrl_limit=None, enum_strs=tuple(choices))
    low, high = _limits(value)
    return PropertyEvent(units=_text(value.get("display.units")), precision=_precision(value),
                         lower_ctrl_limit=low, upper_ctrl_limit=high, enum_strs=None)


def metadata_fields(value: Any) -> tuple[str, ...]:
    """The fields of ``value`` whose change makes a new property event."""
    fields = tuple(name for name in ("display", "control") if _has(value, name))
    return fields + ("value.choices",) if nt_family(value) == "enum" else fields


def assign_put(target: Any, value: Any, choices: Sequence[str] | None = None) -> None:
    """Fill the put structure ``target`` with ``value``: an NTEnum takes an index, or a string
    naming one of ``choices``; other types take the value as it is (p4p converts it).
    Raises ValueError for a value that does not fit."""
    family = nt_family(target) if target.getID() else None
    if family == "enum":
        if isinstance(value, str):
            options = list(choices or [])
            if value not in options:
                raise ValueError(f"{value!r} is not one of the choices {options}")
            value = options.index(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"an enum takes an index or a choice, not {value!r}")
        target["value.index"] = value
        return
    if family is None and not _has(target, "value"):
        raise ValueError(unsupported_reason(target) or "the PV has no value field")
    try:
        target["value"] = value
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{value!r} does not fit the PV's value: {exc}") from exc


def _limits(value: Any) -> tuple[float | None, float | None]:
    """Control limits if set (low < high), else display limits if set, else what is there."""
    pairs = [(value.get(f"{name}.limitLow"), value.get(f"{name}.limitHigh")) for name in ("control", "display")]
    pairs = [pair for pair in pairs if pair[0] is not None and pair[1] is not None]
    for low, high in pairs:
        if low < high:
            return low, high
    return pairs[0] if pairs else (None, None)


def _precision(value: Any) -> int | None:
    """``display.precision`` (NTScalar with form), else the digits of ``display.format``."""
    if _has(value, "display.precision"):
        return int(value["display.precision"])
    match = _FORMAT_PRECISION.search(value.get("display.format") or "")
    return int(match.group(1)) if match else None


def _code(value: Any) -> str:
    """The type code of the ``value`` field ("d", "ai", ...), "" if it is no scalar (array)."""
    try:
        code = value.type().aspy("value")
    except KeyError:
        return ""
    return code if isinstance(code, str) else ""


def _has(value: Any, field: str) -> bool:
    try:
        return field in value
    except (KeyError, TypeError):
        return False


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
