"""Validation helpers shared by the config parsers: each error names the offending key."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def mapping(value: Any, key: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, or a ValueError naming ``key``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected an object, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str):
            raise ValueError(f"{key}: keys must be strings, got {name!r}")
    return value


def reject_unknown(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Unknown keys are errors, so a typo never silently disables a feature."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        prefix = f"{where}." if where else ""
        names = ", ".join(prefix + name for name in unknown)
        raise ValueError(f"{names}: unknown key (allowed: {', '.join(sorted(allowed))})")


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    return value


def integer(value: Any, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A JSON integer (bool and 2.0 are refused: they are almost always a client mistake)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{key}: must be <= {maximum}, got {value}")
    return value


def number(value: Any, key: str, *, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False) -> float:
    """A finite JSON number as float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{key}: must be finite, got {value!r}")
    if positive and result <= 0:
        raise ValueError(f"{key}: must be > 0, got {value!r}")
    if minimum is not None and result < minimum:
        raise ValueError(f"{key}: must be >= {minimum}, got {value!r}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{key}: must be <= {maximum}, got {value!r}")
    return result


def sequence(value: Any, key: str, length: int) -> list[Any]:
    """A JSON array of exactly ``length`` items."""
    if not isinstance(value, list | tuple) or len(value) != length:
        raise ValueError(f"{key}: expected a list of {length} values, got {value!r}")
    return list(value)
