"""Turning Channel Access values into JSON text browsers accept.

JSON has no NaN or infinity, so non-finite floats become ``null`` (documented in
docs/protocol.md). Arrays become lists; character arrays holding text become strings.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson

_isfinite = math.isfinite
_std_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _dumps(value: Any) -> str:
    """orjson (several times faster on the small messages of every update), the standard
    library for what orjson refuses (integers past 64 bits, non-string keys)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _std_dumps(value)


def to_jsonable(value: Any, *, char_array: bool = False) -> Any:
    """A JSON-serialisable copy of a CA value; ``char_array`` marks DBR_CHAR arrays."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return _text_or_codes(np.frombuffer(bytes(value), dtype=np.uint8))
    if isinstance(value, np.ndarray):
        if char_array and value.dtype.kind in "iu" and value.ndim == 1:
            return _text_or_codes(value.astype(np.uint8, copy=False))
        return _array_to_list(value)
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON of an already JSON-able value."""
    return _dumps(value)


def value_json(value: Any, *, char_array: bool = False) -> str:
    """JSON text of a CA value, computed once per update and spliced into every message.

    Numeric arrays go through orjson, ~25x faster than formatting a list (200,000 doubles:
    7 ms against 176 ms here); it writes NaN and infinity as null, like the rest of this module.
    """
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "fiu" and not (
            char_array and value.dtype.kind in "iu"):
        if value.dtype.kind == "f" and value.dtype.itemsize not in (4, 8):
            value = value.astype(np.float64)
        return orjson.dumps(np.ascontiguousarray(value), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return _dumps(to_jsonable(value, char_array=char_array))


def scalar_json(value: Any, *, char_array: bool = False) -> str:
    """JSON text of a value, with finite floats and ints (nearly every scalar update, every
    timestamp and severity) written without a call into the encoder: ``repr`` is what
    ``json.dumps`` writes (and ophyd-websocket sends), at a third of the cost."""
    kind = type(value)
    if kind is float and _isfinite(value):
        return repr(value)
    if kind is int:
        return str(value)
    return value_json(value, char_array=char_array)


def _array_to_list(array: np.ndarray) -> list[Any]:
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        return [v if math.isfinite(v) else None for v in array.tolist()]
    if array.dtype.kind in "SU":
        return [to_jsonable(v) for v in array.tolist()]
    return array.tolist()


def _text_or_codes(codes: np.ndarray) -> str | list[int]:
    """EPICS long strings are NUL-terminated char arrays; other byte arrays stay numbers."""
    raw = codes.tobytes()
    end = raw.find(b"\x00")
    body = raw if end < 0 else raw[:end]
    tail = b"" if end < 0 else raw[end:]
    if tail.strip(b"\x00"):
        return codes.tolist()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return codes.tolist()
    if all(ch.isprintable() or ch in "\t\n\r" for ch in text):
        return text
    return codes.tolist()
