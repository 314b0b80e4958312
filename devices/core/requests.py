"""Parsing and validating client requests, with errors that say what was wrong.

Pure functions: no sockets, no CA. Used by the pv-socket, the device socket and the pycaserver socket.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from devices.channel_layer.topics import name_problem

PV_ACTIONS = ("subscribe", "subscribeSafely", "subscribeReadOnly", "unsubscribe", "set", "refresh", "options")
# What ``options`` may set (an addition to ophyd-websocket), besides ``action`` and ``id``.
OPTION_FIELDS = ("batch_ms",)
BATCH_MS_MAX = 1000


@dataclass(frozen=True)
class Vocabulary:
    """The words of one socket's protocol: what a target is called, in one and in many."""

    one: str  # "pv" / "device"
    many: str  # "pvs" / "devices"
    noun: str  # "PV" / "Device", in error texts
    example: str
    actions: tuple[str, ...] = PV_ACTIONS


PV_WORDS = Vocabulary("pv", "pvs", "PV", "IOC:m1")
# The device socket adds "stop" (an addition: halt a positioner's move).
DEVICE_WORDS = Vocabulary("device", "devices", "Device", "motor1", (*PV_ACTIONS, "stop"))


class ProtocolError(Exception):
    """A request that cannot be served; becomes ``{"error": message, "code": code}``."""

    def __init__(self, code: str, message: str, request_id: Any = None, action: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.action = action


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    max_names_per_request: int
    max_name_length: int
    set_timeout_max_s: float


@dataclass
class PvRequest:
    action: str
    names: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    value: Any = None
    timeout: float | None = None
    request_id: Any = None
    signal: str | None = None  # device socket: the signal a set names within the device
    batch_ms: int | float | None = None  # options: the batching window asked for (None: unchanged)


def decode_frame(text: str | None, data: bytes | None, limits: Limits) -> Any:
    """The JSON value of one WebSocket frame, or ProtocolError."""
    if text is None:
        raise ProtocolError("binary_frame", "Binary frames are not accepted; send JSON text")
    if len(text) > limits.max_message_bytes or len(text.encode("utf-8")) > limits.max_message_bytes:
        raise ProtocolError(
            "too_large",
            f"Message of {len(text.encode('utf-8'))} bytes exceeds the limit of "
            f"{limits.max_message_bytes} bytes (OAS_MAX_MESSAGE_BYTES)",
        )
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ProtocolError("bad_json", f"Invalid JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def request_id_of(message: dict[str, Any]) -> Any:
    """The ``id`` to echo, if it is a usable one (string, integer, or null)."""
    rid = message.get("id")
    if rid is None or (isinstance(rid, (str, int)) and not isinstance(rid, bool)):
        if isinstance(rid, str) and len(rid) > 200:
            raise ProtocolError("bad_field", "'id' must be at most 200 characters")
        return rid
    raise ProtocolError("bad_field", "'id' must be a string or an integer")


def parse_pv_request(message: Any, limits: Limits) -> PvRequest:
    """Validate one decoded pv-socket message."""
    return parse_request(message, limits, PV_WORDS)


def parse_request(message: Any, limits: Limits, words: Vocabulary) -> PvRequest:
    """Validate one decoded message of the pv-socket or the device socket (``words``)."""
    example = f'{{"action": "subscribe", "{words.one}": "{words.example}"}}'
    if not isinstance(message, dict):
        raise ProtocolError("not_object", f"Expected a JSON object such as {example}, got {_kind(message)}")
    rid = request_id_of(message)
    action = message.get("action")
    if action is None:
        raise ProtocolError("missing_field", "Missing 'action'; allowed: " + ", ".join(words.actions), rid)
    if not isinstance(action, str):
        raise ProtocolError("bad_field", f"'action' must be a string, got {_kind(action)}", rid)
    if action not in words.actions:
        raise ProtocolError(
            "unknown_action",
            f"Unknown action {action[:50]!r}; allowed: {', '.join(words.actions)}. Example: {example}",
            rid,
        )
    request = PvRequest(action=action, request_id=rid)
    if action == "refresh":
        return request
    if action == "options":
        request.batch_ms = parse_options(message, rid)
        return request
    _names_into(request, message, limits, words, single_only=(action in ("set", "stop")))
    if action == "stop" and request.invalid:
        raise ProtocolError("bad_name", request.invalid[0][1], rid, action)
    if action == "set":
        if "value" not in message:
            raise ProtocolError("missing_field", "'set' needs a 'value'", rid, action)
        if message["value"] is None:
            raise ProtocolError("bad_field", "'value' must not be null", rid, action)
        request.value = message["value"]
        request.timeout = parse_timeout(message.get("timeout"), limits, rid, action)
        if request.invalid:
            name, why = request.invalid[0]
            raise ProtocolError("bad_name", why, rid, action)
        signal = message.get("signal")
        if signal is not None and (not isinstance(signal, str) or name_problem(signal, limits.max_name_length)):
            raise ProtocolError("bad_field", "'signal' must be the name of one of the device's signals", rid, action)
        request.signal = signal
    return request


def parse_options(message: dict[str, Any], rid: Any = None) -> int | float | None:
    """The ``batch_ms`` of an ``options`` request (None if it names none); unknown fields are
    refused by name, so a misspelt option is not silently ignored."""
    unknown = sorted(k for k in message if k not in ("action", "id", *OPTION_FIELDS))
    if unknown:
        raise ProtocolError("bad_field", (
            f"Unknown option{'s' if len(unknown) > 1 else ''} {', '.join(repr(k[:50]) for k in unknown[:10])}; "
            f"'options' takes: {', '.join(OPTION_FIELDS)}"), rid, "options")
    raw = message.get("batch_ms")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ProtocolError("bad_field", f"'batch_ms' must be a number of milliseconds, got {_kind(raw)}",
                            rid, "options")
    if not 0 <= raw <= BATCH_MS_MAX:  # also refuses infinity (1e999 parses as one) and huge integers
        raise ProtocolError("bad_field", f"'batch_ms' must be from 0 (off) to {BATCH_MS_MAX} ms, got {str(raw)[:30]}",
                            rid, "options")
    return raw


def parse_timeout(raw: Any, limits: Limits, rid: Any = None, action: str | None = None) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise ProtocolError("bad_field", f"'timeout' must be a number of seconds, got {_kind(raw)}", rid, action)
    if not 0 < raw <= limits.set_timeout_max_s:
        raise ProtocolError(
            "bad_field", f"'timeout' must be > 0 and at most {limits.set_timeout_max_s:g} s", rid, action)
    return float(raw)


def _names_into(request: PvRequest, message: dict[str, Any], limits: Limits, words: Vocabulary, *,
                single_only: bool) -> None:
    rid, action = request.request_id, request.action
    one, many = words.one, words.many
    has_one, has_many = one in message, many in message
    if has_one and has_many:
        raise ProtocolError("bad_field", f"Give either '{one}' or '{many}', not both", rid, action)
    if single_only and has_many:
        raise ProtocolError("bad_field", f"'{action}' takes one '{one}', not '{many}'", rid, action)
    if not has_one and not has_many:
        raise ProtocolError("missing_field", f"'{action}' needs '{one}' (a name) or '{many}' (a list of names)",
                            rid, action)
    if has_one:
        raw = message[one]
        if not isinstance(raw, str):
            raise ProtocolError("bad_field", f"'{one}' must be a string, got {_kind(raw)}", rid, action)
        candidates = [raw]
    else:
        raw = message[many]
        if not isinstance(raw, list):
            raise ProtocolError("bad_field", f"'{many}' must be a list of strings, got {_kind(raw)}", rid, action)
        if not raw:
            raise ProtocolError("bad_field", f"'{many}' is empty", rid, action)
        if len(raw) > limits.max_names_per_request:
            raise ProtocolError(
                "too_many",
                f"{len(raw)} names in one request; at most {limits.max_names_per_request} "
                "(OAS_MAX_NAMES_PER_REQUEST): split the request",
                rid, action)
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                raise ProtocolError("bad_field", f"'{many}' item {i} must be a string, got {_kind(item)}", rid,
                                    action)
        candidates = raw
    seen: set[str] = set()
    for name in candidates:
        if name in seen:
            continue
        seen.add(name)
        why = name_problem(name, limits.max_name_length, words.noun)
        if why is None:
            request.names.append(name)
        else:
            request.invalid.append((name, why))


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
