"""What the bridge needs from a control-system channel, independent of Channel Access.

The bridge core (rate cap, publishing, sets) talks to this interface only, so a device
signal or a simulation can stand behind a PV name as well as a pyepics channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


class ValueEvent(NamedTuple):
    """One monitor update as received from the control system (a tuple: made for every CA
    event on the callback thread, at half the cost of a frozen dataclass)."""

    value: Any
    timestamp: float | None
    severity: int | None
    status: int | None


@dataclass(frozen=True)
class PropertyEvent:
    """Control metadata as a DBE_PROPERTY event carries it."""

    units: str | None
    precision: int | None
    lower_ctrl_limit: float | None
    upper_ctrl_limit: float | None
    enum_strs: tuple[str, ...] | None


# The kind of a channel the server cannot map (a PVA structure that is no normative type):
# it connects, sends no values, and ``extra["error"]`` says why.
UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class ChannelInfo:
    """Static facts about a connected channel: native type, size, and control metadata."""

    kind: str  # "float" | "int" | "enum" | "string" | "char" (a char array) | UNSUPPORTED
    count: int
    units: str | None = None
    precision: int | None = None
    lower_ctrl_limit: float | None = None
    upper_ctrl_limit: float | None = None
    enum_strs: tuple[str, ...] | None = None
    access: tuple[bool, bool] = (True, True)  # (read, write) as the IOC grants them
    # The control fields above are not known yet; the source's first property event brings them.
    metadata_pending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class SourceSink(Protocol):
    """Receives a source's events on the bridge's event loop."""

    def source_connection(self, connected: bool) -> None: ...

    def source_access(self, access: tuple[bool, bool]) -> None: ...

    def source_value(self, event: ValueEvent) -> None: ...

    def source_property(self, event: PropertyEvent) -> None:
        """Units, precision, limits or enum strings as the IOC now reports them (DBE_PROPERTY)."""


class PutCallback(Protocol):
    def __call__(self, ok: bool, message: str) -> None: ...


class Source(Protocol):
    """A channel; every method may block and is called off the event loop."""

    name: str

    def open(self) -> None: ...

    def info(self, timeout: float) -> ChannelInfo | None: ...

    def put(self, value: Any, done: PutCallback) -> None: ...

    def close(self) -> None: ...


class ReadyInfo(Protocol):
    """A source that can also give its ``info`` without waiting (CaSource): the bridge asks
    that first, for thousands of channels in one executor job (batch_calls.py)."""

    def info_ready(self) -> ChannelInfo | None:
        """``info`` now, or None if it is not known yet."""
