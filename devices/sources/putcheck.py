"""Checking a requested value against a channel's type and control limits before a put."""

from __future__ import annotations

import math
from typing import Any

from .source import ChannelInfo


class PutRejected(Exception):
    """A set refused before reaching the IOC; ``code`` is the machine-readable outcome."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def coerce_for_put(name: str, info: ChannelInfo, value: Any) -> Any:
    """The value to write, converted to the channel's kind; raises PutRejected if it cannot be."""
    if info.count > 1 and info.kind != "char":
        return _array(name, info, value)
    if info.kind == "char":
        if isinstance(value, str):
            if len(value.encode("utf-8")) >= info.count:
                raise PutRejected("bad_value", f"{name} holds at most {info.count - 1} bytes of text")
            return value
        return _array(name, info, value)
    if info.kind == "string":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise PutRejected("bad_value", f"{name} is a string PV; send a string, not {_kind(value)}")
        text = str(value)
        if len(text.encode("utf-8")) > 39:
            raise PutRejected("bad_value", f"{name} is an EPICS string: at most 39 bytes")
        return text
    if info.kind == "enum":
        return _enum(name, info, value)
    number = _number(name, value)
    if info.kind == "int":
        if not float(number).is_integer():
            raise PutRejected("bad_value", f"{name} holds integers; {value!r} is not one")
        number = int(number)
    _check_limits(name, info, number)
    return number


def _number(name: str, value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value) if any(c in value for c in ".eEn") else int(value, 0)
        except ValueError:
            raise PutRejected("bad_value", f"{name} is numeric; {value!r} is not a number") from None
    else:
        raise PutRejected("bad_value", f"{name} is numeric; send a number, not {_kind(value)}")
    if isinstance(number, float) and not math.isfinite(number):
        raise PutRejected("bad_value", f"{name}: {value!r} is not a finite number")
    return number


def _check_limits(name: str, info: ChannelInfo, number: float) -> None:
    low, high = info.lower_ctrl_limit, info.upper_ctrl_limit
    if low is None or high is None or low >= high:
        return  # EPICS: equal (or unset) control limits mean "no limits"
    if not low <= number <= high:
        raise PutRejected(
            "out_of_limits",
            f"Value {number} is outside the control limits of {name}: low {low}, high {high}",
        )


def _enum(name: str, info: ChannelInfo, value: Any) -> int:
    choices = info.enum_strs or ()
    if isinstance(value, str) and value in choices:
        return choices.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < max(len(choices), 1):
        return value
    allowed = ", ".join(repr(c) for c in choices) or "no states defined"
    raise PutRejected(
        "bad_value",
        f"{name} is an enum; send one of {allowed} or an index 0..{max(len(choices) - 1, 0)}",
    )


def _array(name: str, info: ChannelInfo, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise PutRejected("bad_value", f"{name} is an array of {info.count}; send a JSON list")
    if len(value) > info.count:
        raise PutRejected("bad_value", f"{name} holds at most {info.count} elements, got {len(value)}")
    if info.kind == "string":
        return [str(v) for v in value]
    numbers = [_number(name, v) for v in value]
    if info.kind in {"int", "char"} and not all(float(n).is_integer() for n in numbers):
        raise PutRejected("bad_value", f"{name} holds integers; the list contains fractions")
    return numbers


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", type(None): "null", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
