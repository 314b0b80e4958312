"""PvaSource (devices/sources/pva_source.py) against a real PV Access server in a subprocess
(tests/support/pva_server.py, p4p SharedPVs): values, metadata, puts with the server's
outcome, a server that dies and comes back on the same port, and a non-normative structure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from devices.sources.pva_source import PvaSource, configure_pva_context, pva_context
from devices.sources.pva_types import UNSUPPORTED
from devices.sources.source import ChannelInfo, PropertyEvent, ValueEvent
from tests.support.pva_server import CUSTOM_ID, DOUBLE_LIMITS, ENUM_CHOICES, PvaServerProcess

pytestmark = pytest.mark.system


class Sink:
    """Collects a source's events on the loop, as the bridge's PvEntry receives them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def source_connection(self, connected: bool) -> None:
        self.events.append(("connection", connected))

    def source_access(self, access: tuple[bool, bool]) -> None:
        self.events.append(("access", access))

    def source_value(self, event: ValueEvent) -> None:
        self.events.append(("value", event))

    def source_property(self, event: PropertyEvent) -> None:
        self.events.append(("property", event))

    def of(self, kind: str) -> list[Any]:
        return [arg for what, arg in self.events if what == kind]

    @property
    def values(self) -> list[Any]:
        return [event.value for event in self.of("value")]


@pytest.fixture
def server() -> Iterator[PvaServerProcess]:
    """A fresh server per test (tests write to it and kill it); the process's PVA client
    context is configured to find it and nothing else."""
    proc = PvaServerProcess("PVA:")
    proc.start()
    configure_pva_context(proc.client_conf())
    yield proc
    proc.stop()
    configure_pva_context(None)


async def until(check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        await asyncio.sleep(0.01)


async def opened(name: str) -> tuple[PvaSource, Sink, ChannelInfo]:
    loop = asyncio.get_running_loop()
    sink = Sink()
    source = PvaSource(name, loop, sink)
    await loop.run_in_executor(None, source.open)
    info = await loop.run_in_executor(None, source.info, 5.0)
    assert info is not None, f"no info for {name}"
    await until(lambda: sink.of("value") or info.kind == UNSUPPORTED, what=f"a value of {name}")
    return source, sink, info


async def put(source: PvaSource, value: Any, timeout: float = 5.0) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bool, str]] = loop.create_future()

    def on_done(ok: bool, message: str) -> None:
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result((ok, message)))

    await loop.run_in_executor(None, source.put, value, on_done)
    return await asyncio.wait_for(done, timeout)


async def close(source: PvaSource) -> None:
    await asyncio.get_running_loop().run_in_executor(None, source.close)


async def test_double_value_timestamp_and_metadata(server):
    source, sink, info = await opened(server.pvname("double"))
    try:
        assert (info.kind, info.count, info.units, info.precision) == ("float", 1, "mm", 3)
        assert (info.lower_ctrl_limit, info.upper_ctrl_limit) == DOUBLE_LIMITS
        assert info.access == (True, True)
        event = sink.of("value")[0]
        assert event.value == 1.5 and (event.severity, event.status) == (0, 0)
        assert abs(event.timestamp - time.time()) < 60
        # connection, access and metadata come before the first value
        assert [what for what, _ in sink.events[:4]] == ["connection", "access", "property", "value"]
        assert sink.of("connection") == [True] and sink.of("access") == [(True, True)]
        assert sink.of("property")[0] == PropertyEvent("mm", 3, *DOUBLE_LIMITS, None)
    finally:
        await close(source)


async def test_int_and_string(server):
    source, sink, info = await opened(server.pvname("int"))
    assert (info.kind, info.units, sink.values) == ("int", "counts", [42])
    await close(source)
    source, sink, info = await opened(server.pvname("string"))
    assert (info.kind, info.count, sink.values) == ("string", 1, ["hello"])
    assert (await put(source, "bye")) == (True, "")
    await until(lambda: sink.values[-1] == "bye")
    await close(source)


async def test_a_metadata_change_is_a_property_event(server):
    source, sink, info = await opened(server.pvname("int"))
    try:
        assert info.units == "counts"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: pva_context().put(server.pvname("int"), {"display.units": "V"}))
        await until(lambda: sink.of("property")[-1].units == "V", what="the new units")
        assert len(sink.of("property")) == 2
        assert (await loop.run_in_executor(None, source.info, 1.0)).units == "V"
        assert (await put(source, 43)) == (True, "")
        await until(lambda: sink.values[-1] == 43)
        assert len(sink.of("property")) == 2, "a value update is no property event"
    finally:
        await close(source)


async def test_enum_index_and_choices_and_puts(server):
    source, sink, info = await opened(server.pvname("enum"))
    try:
        assert (info.kind, info.enum_strs, sink.values) == ("enum", tuple(ENUM_CHOICES), [1])
        assert (await put(source, "Fault")) == (True, "")
        await until(lambda: sink.values[-1] == 2, what="index 2 after the put of 'Fault'")
        assert (await put(source, 0)) == (True, "")
        await until(lambda: sink.values[-1] == 0, what="index 0")
        ok, message = await put(source, "Broken")
        assert not ok and "not one of the choices" in message
        ok, message = await put(source, 7)
        assert not ok and "not one of 0..2" in message  # the server's own refusal
    finally:
        await close(source)


async def test_array_of_doubles(server):
    source, sink, info = await opened(server.pvname("array"))
    try:
        assert (info.kind, info.count) == ("float", 3)
        first = sink.values[0]
        assert isinstance(first, np.ndarray) and first.tolist() == [1.0, 2.0, 3.0]
        assert (await put(source, [4.0, 5.0, 6.0, 7.0])) == (True, "")
        await until(lambda: len(sink.values[-1]) == 4)
        assert sink.values[-1].tolist() == [4.0, 5.0, 6.0, 7.0]
    finally:
        await close(source)


async def test_a_counter_streams_every_update_in_order(server):
    source, sink, _ = await opened(server.pvname("counter"))
    await asyncio.sleep(1.0)
    await close(source)
    values = sink.values
    assert len(values) >= 6, values
    assert all(b - a == 1 for a, b in zip(values, values[1:], strict=False)), values
    stamps = [event.timestamp for event in sink.of("value")]
    assert stamps == sorted(stamps)
    count = len(sink.values)
    await asyncio.sleep(0.3)
    assert len(sink.values) == count, "values after close()"


async def test_a_failing_update_does_not_end_the_subscription(server, monkeypatch):
    """p4p drops a subscription whose callback raises: the source's callback must not."""
    import devices.sources.pva_source as module

    real, calls = module.value_event, []

    def flaky(value: Any, enum: bool = False) -> ValueEvent:
        calls.append(1)
        if len(calls) in (2, 3):
            raise RuntimeError("mapping failed")
        return real(value, enum)

    monkeypatch.setattr(module, "value_event", flaky)
    source, sink, _ = await opened(server.pvname("counter"))
    try:
        await until(lambda: len(sink.values) >= 4, timeout=3.0, what="values after the failures")
        assert len(calls) >= 6
    finally:
        await close(source)


async def test_put_completes_and_the_value_follows(server):
    source, sink, _ = await opened(server.pvname("double"))
    try:
        assert (await put(source, 2.5)) == (True, "")
        await until(lambda: sink.values[-1] == 2.5, what="2.5 after the put")
    finally:
        await close(source)


async def test_put_refused_by_the_server_carries_its_message(server):
    source, sink, _ = await opened(server.pvname("double"))
    try:
        ok, message = await put(source, 7.0)
        assert not ok
        assert message == "value 7 is outside the control limits -5..5"
        ok, message = await put(source, "not a number")  # refused before it is sent; no exception
        assert not ok and "does not fit" in message
        assert sink.values == [1.5]
    finally:
        await close(source)


async def test_server_dies_and_returns_on_the_same_port(server):
    source, sink, _ = await opened(server.pvname("counter"))
    try:
        killed = time.monotonic()
        server.stop()
        await until(lambda: sink.of("connection")[-1] is False, timeout=2.0, what="connection False")
        assert time.monotonic() - killed < 2.0
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, source.info, 0.2) is None
        ok, message = await put(source, 3)
        assert not ok and "not connected" in message
        seen = len(sink.values)
        port = server.conf["EPICS_PVAS_SERVER_PORT"]
        server.start()
        assert server.conf["EPICS_PVAS_SERVER_PORT"] == port
        await until(lambda: sink.of("connection")[-1] is True, timeout=15.0, what="connection True again")
        await until(lambda: len(sink.values) >= seen + 3, timeout=5.0, what="values again")
        assert sink.of("connection") == [True, False, True]
        info = await loop.run_in_executor(None, source.info, 1.0)
        assert info is not None and info.kind == "int"
    finally:
        await close(source)


async def test_a_structure_that_is_no_normative_type(server):
    source, sink, info = await opened(server.pvname("custom"))
    try:
        assert (info.kind, info.count) == (UNSUPPORTED, 0)
        assert CUSTOM_ID in info.extra["error"] and info.extra["type_id"] == CUSTOM_ID
        assert sink.of("connection") == [True] and sink.of("value") == []
        ok, message = await put(source, 1)
        assert (ok, message) == (False, info.extra["error"])
    finally:
        await close(source)


async def test_a_name_nobody_serves_never_connects(server):
    loop = asyncio.get_running_loop()
    sink = Sink()
    source = PvaSource(server.pvname("nothing"), loop, sink)
    await loop.run_in_executor(None, source.open)
    assert await loop.run_in_executor(None, source.info, 0.5) is None
    assert sink.events == []
    await close(source)


def test_one_context_per_configuration(server):
    assert pva_context() is pva_context()
    first = pva_context()
    configure_pva_context(server.client_conf())
    assert pva_context() is not first
