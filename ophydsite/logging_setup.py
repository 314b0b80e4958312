"""Log output: plain text (the default) or one JSON object a line (``OAS_LOG_FORMAT=json``).

A JSON line carries the socket, client, user and PV the record was logged for, taken from a
context variable that the socket code binds: each WebSocket runs in a task of its own, and the
tasks it starts copy the binding, so no call in between passes it on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FORMATS = ("plain", "json")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("socket", "client", "user", "pv")

_EMPTY: MappingProxyType[str, str] = MappingProxyType({})
_context: ContextVar[MappingProxyType[str, str]] = ContextVar("ophydsite_log_context", default=_EMPTY)


def log_context_bind(**fields: str | None) -> None:
    """Add fields to the current task's log context (kept by the tasks it starts later)."""
    _context.set(_merged(fields))


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """The fields in the log context for the ``with`` block only (e.g. the PV of one set)."""
    token = _context.set(_merged(fields))
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> dict[str, str]:
    return dict(_context.get())


def _merged(fields: dict[str, str | None]) -> MappingProxyType[str, str]:
    merged = {**_context.get(), **{key: str(value) for key, value in fields.items() if value is not None}}
    return MappingProxyType(merged)


class ContextFilter(logging.Filter):
    """Copies the log context onto each record, so the JSON formatter writes it as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(_JsonFormatter):
    """``{"time", "level", "logger", "message", ...context, ...extra}``, one object a line."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn adds a colourised copy of its messages; it is noise in a JSON line.
            reserved_attrs=[*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "color_message", "message"],
            json_default=_json_default,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)


def _json_default(value: Any) -> Any:
    """Anything a record's extra holds that JSON has no type for is written as its text."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """Django's LOGGING for OAS_LOG_LEVEL and OAS_LOG_FORMAT; an unknown format stops the start."""
    if log_format not in FORMATS:
        raise ValueError(f"OAS_LOG_FORMAT: must be 'plain' or 'json', got {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"plain": {"format": PLAIN_FORMAT}, "json": {"()": JsonFormatter}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format,
                                 "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level.upper()},
    }


def console_line(text: str, logger: str, log_format: str) -> str:
    """A line a management command prints whatever the log level (scripts wait for some of
    them): as it is in plain mode, as a JSON log line in JSON mode, so the output stays JSON."""
    if log_format != "json":
        return text
    record = logging.LogRecord(logger, logging.INFO, "", 0, text, None, None)
    ContextFilter().filter(record)
    return JsonFormatter().format(record)
