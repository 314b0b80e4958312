"""Carrying out one set: wait for the channel, check the value, put, await completion.

The put is started off the loop and its completion comes back through a future, so a slow
IOC never holds the event loop or another client's stream.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from devices.channel_layer.topics import topic_label
from devices.sources.putcheck import PutRejected, coerce_for_put
from devices.sources.source import ValueEvent

from .entry import PvEntry

READBACK_WAIT_S = 0.5  # at most this long after a completed put for the IOC's monitor update


@dataclass(frozen=True)
class SetOutcome:
    """How a set ended. ``status`` is one of the codes in docs/protocol.md."""

    status: str  # done | out_of_limits | bad_value | not_connected | read_only | timeout | ioc_refused
    message: str
    value: Any = None
    duration_s: float = 0.0
    before: str | None = None  # JSON text of the value when the set started (for the audit)
    after: str | None = None  # JSON text of the value the bridge held when the set ended

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def perform_set(entry: PvEntry, value: Any, timeout: float) -> SetOutcome:
    """Set ``entry`` to ``value`` within ``timeout`` seconds (connection time included)."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline = loop.time() + timeout

    label = topic_label(entry.name)

    before: str | None = None

    def outcome(status: str, message: str, written: Any = None) -> SetOutcome:
        after = entry.value_message()["value"] if entry.last is not None else None
        return SetOutcome(status, message, written, round(time.monotonic() - started, 6), before, after)

    try:
        await asyncio.wait_for(entry.ready.wait(), max(deadline - loop.time(), 0.001))
    except TimeoutError:
        return outcome("not_connected", f"{label} is not connected (waited {timeout:g} s)")
    assert entry.info is not None
    before = entry.value_message()["value"] if entry.last is not None else None
    seen_before = entry.last
    if not entry.access[1]:
        device = label != entry.name
        why = "is read-only: writes are not allowed" if device else "does not accept writes (IOC access rights)"
        return outcome("read_only", f"{label} {why}")
    try:
        coerced = coerce_for_put(label, entry.info, value)
    except PutRejected as exc:
        return outcome(exc.code, exc.message)

    done: asyncio.Future[tuple[bool, str]] = loop.create_future()

    def on_done(ok: bool, message: str) -> None:
        """Runs on the CA callback thread. Must not block."""
        loop.call_soon_threadsafe(_settle, done, (ok, message))

    try:
        await loop.run_in_executor(entry.executor, entry.source.put, coerced, on_done)
    except PutRejected as exc:
        return outcome(exc.code, exc.message)
    except (ConnectionError, ValueError) as exc:
        status = "not_connected" if isinstance(exc, ConnectionError) else "bad_value"
        return outcome(status, str(exc))
    try:
        ok, message = await asyncio.wait_for(asyncio.shield(done), max(deadline - loop.time(), 0.001))
    except TimeoutError:
        return outcome("timeout", f"{label} did not complete the write within {timeout:g} s", coerced)
    if not ok:
        return outcome("ioc_refused", f"The write to {label} failed: {message}", coerced)
    # The monitor update with what the IOC stored may follow the put completion: wait briefly
    # so the audit's "readback after" is that value, not the one before. A value the PV
    # already held needs no wait: a C IOC posts no monitor for it (deadband), so the wait
    # would always run its full length, and the value held is the readback.
    if not (entry.last is seen_before and _holds(seen_before, coerced)):
        await entry.next_value(seen_before, READBACK_WAIT_S)
    return outcome("done", f"Set {label} to {coerced!r}", coerced)


def _holds(event: ValueEvent | None, value: Any) -> bool:
    """Whether ``event`` already carries ``value`` (scalars only; arrays are not compared)."""
    if event is None or isinstance(value, (list, tuple)):
        return False
    held = event.value
    if callable(getattr(held, "item", None)) and getattr(held, "size", 1) == 1:
        held = held.item()  # a numpy scalar or one-element array
    return isinstance(held, (int, float, str)) and held == value


def _settle(future: asyncio.Future[tuple[bool, str]], result: tuple[bool, str]) -> None:
    if not future.done():
        future.set_result(result)
