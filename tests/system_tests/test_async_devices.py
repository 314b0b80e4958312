"""ophyd-async signals and devices behind the bridge's Source interface, against real IOCs.

The C IOC (bench/cioc.py: 10 Hz ``calc`` counters, ``ao`` setpoints) gives values with the
IOC's timestamps; the caproto demo IOC, fresh per test (``restartable_ioc``: ours alone to
write to), a motor record for ophyd-async's ``Motor`` and PVs with units, limits, enum
choices and writes that fail. Soft signals need no IOC. Events reach a recording sink on the
test's loop through the bridge's inbox, as they reach the bridge.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ophyd_async.core import Device, StandardReadable, StrictEnum, soft_signal_rw
from ophyd_async.epics.core import epics_signal_r, epics_signal_rw
from ophyd_async.epics.motor import Motor

from devices.sources.async_runtime import connect_devices_blocking
from devices.sources.async_sources import AsyncMovableSource, AsyncSignalSource
from devices.sources.source import ChannelInfo, PropertyEvent, ValueEvent
from tests.support.child import ChildProcess
from tests.support.ioc import HOST, PROJECT_ROOT, free_port

pytestmark = pytest.mark.system


class Sink:
    """Records a source's events (SourceSink), on the loop that made it."""

    def __init__(self) -> None:
        self.values: list[ValueEvent] = []
        self.connection: list[bool] = []
        self.access: list[tuple[bool, bool]] = []
        self.properties: list[PropertyEvent] = []
        self.changed = asyncio.Event()

    def _note(self) -> None:
        self.changed.set()

    def source_connection(self, connected: bool) -> None:
        self.connection.append(connected)
        self._note()

    def source_access(self, access: tuple[bool, bool]) -> None:
        self.access.append(access)
        self._note()

    def source_value(self, event: ValueEvent) -> None:
        self.values.append(event)
        self._note()

    def source_property(self, event: PropertyEvent) -> None:
        self.properties.append(event)
        self._note()

    async def until(self, check: Any, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            self.changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s; values {self.values[-3:]}")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass


async def opened(source: AsyncSignalSource, timeout: float = 10.0) -> ChannelInfo:
    """Open a source as the bridge does (off the loop) and wait for its info."""
    await asyncio.to_thread(source.open)
    info = await asyncio.to_thread(source.info, timeout)
    assert info is not None, source.error
    return info


async def put(source: AsyncSignalSource, value: Any, timeout: float = 15.0) -> tuple[bool, str]:
    """``source.put`` as the bridge calls it (on an executor thread); the outcome it reports."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bool, str]] = loop.create_future()

    def on_done(ok: bool, message: str) -> None:
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result((ok, message)))

    await asyncio.to_thread(source.put, value, on_done)
    return await asyncio.wait_for(done, timeout)


# --- values, metadata and sets over Channel Access ----------------------------------------


async def test_counter_values_arrive_with_the_iocs_timestamps(c_ioc):
    loop = asyncio.get_running_loop()
    sink = Sink()
    signal = epics_signal_r(float, f"ca://{c_ioc.pvname('v1')}", name="v1")
    source = AsyncSignalSource("async:v1", loop, sink, signal)
    info = await opened(source)
    try:
        assert (info.kind, info.count, info.precision, info.access) == ("float", 1, 3, (True, False))
        await sink.until(lambda: len(sink.values) >= 4)
        assert sink.connection[0] is True
        recent = sink.values[-3:]
        steps = [b.value - a.value for a, b in zip(recent, recent[1:], strict=False)]
        assert steps == [pytest.approx(1.0), pytest.approx(1.0)], recent  # calc A+1 at 10 Hz: none lost, none repeated
        stamps = [event.timestamp for event in recent]
        assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 5
        assert all(event.severity == 0 for event in recent)
    finally:
        await asyncio.to_thread(source.close)
    count = len(sink.values)
    await asyncio.sleep(0.5)
    assert len(sink.values) == count  # closed: no more values


async def test_metadata_units_limits_and_enum_choices(restartable_ioc):
    loop = asyncio.get_running_loop()
    sink_sp, sink_mode = Sink(), Sink()
    sp = epics_signal_rw(float, f"ca://{restartable_ioc.pvname('m1:sp')}", name="sp")
    mode = epics_signal_rw(str, f"ca://{restartable_ioc.pvname('mode')}", name="mode")
    sp_source = AsyncSignalSource("async:sp", loop, sink_sp, sp)
    mode_source = AsyncSignalSource("async:mode", loop, sink_mode, mode)
    try:
        info = await opened(sp_source)
        assert (info.kind, info.units, info.precision) == ("float", "mm", 3)
        assert (info.lower_ctrl_limit, info.upper_ctrl_limit, info.access) == (-100.0, 100.0, (True, True))
        await sink_sp.until(lambda: bool(sink_sp.properties))
        assert sink_sp.properties[0].units == "mm" and sink_sp.properties[0].upper_ctrl_limit == 100.0

        info = await opened(mode_source)
        assert (info.kind, info.enum_strs) == ("enum", ("Off", "On", "Fault"))
        await sink_mode.until(lambda: bool(sink_mode.values))
        assert sink_mode.values[-1].value == 0  # "Off", as its index (as CA enums are)
        assert await put(mode_source, 1) == (True, "")  # an index, as the bridge's check sends
        await sink_mode.until(lambda: sink_mode.values[-1].value == 1)
        assert restartable_ioc.caget("mode", as_string=True) == "On"
    finally:
        await asyncio.to_thread(sp_source.close)
        await asyncio.to_thread(mode_source.close)


async def test_a_put_completes_and_its_value_streams(c_ioc):
    loop = asyncio.get_running_loop()
    sink = Sink()
    signal = epics_signal_rw(float, f"ca://{c_ioc.pvname('sp3')}", name="sp3")
    source = AsyncSignalSource("async:sp3", loop, sink, signal)
    await opened(source)
    try:
        target = round(time.time() % 1000, 3)
        assert await put(source, target) == (True, "")
        await sink.until(lambda: bool(sink.values) and sink.values[-1].value == target)
        assert c_ioc.caget("sp3") == target
    finally:
        await asyncio.to_thread(source.close)


async def test_a_failing_put_reports_the_reason(restartable_ioc):
    loop = asyncio.get_running_loop()
    refuse = epics_signal_rw(float, f"ca://{restartable_ioc.pvname('refuse')}", name="refuse")
    readonly = epics_signal_r(float, f"ca://{restartable_ioc.pvname('m1:rbv')}", name="rbv")
    sources = [AsyncSignalSource("async:refuse", loop, Sink(), refuse),
               AsyncSignalSource("async:rbv", loop, Sink(), readonly)]
    try:
        for source in sources:
            await opened(source)
        ok, message = await put(sources[0], 1.0)
        assert not ok and "write request failed" in message, message
        ok, message = await put(sources[1], 1.0)
        assert (ok, message) == (False, "async:rbv is read-only")
    finally:
        for source in sources:
            await asyncio.to_thread(source.close)


# --- connection: an IOC killed and restarted --------------------------------------------

# libca re-searches a lost channel on its 10 s "disconnect governor" tick or on a new beacon,
# so a reconnect takes up to ~10 s after the restart (test_demo_ioc.py); PVA reconnects sooner.
RECONNECT_BOUND_S = 20.0
DISCONNECT_BOUND_S = 3.0


async def until_reconnected(sink: Sink, stopped: Any, started: Any) -> tuple[float, float]:
    """Kill the server (``stopped``), wait for the disconnect, restart it (``started``), wait for
    the reconnect and new values; (seconds to the disconnect, seconds after restart to values)."""
    killed_at = time.monotonic()
    await asyncio.to_thread(stopped)
    await sink.until(lambda: sink.connection[-1] is False, DISCONNECT_BOUND_S)
    down_s = time.monotonic() - killed_at
    before = len(sink.values)
    await asyncio.to_thread(started)
    restarted_at = time.monotonic()
    await sink.until(lambda: sink.connection[-1] is True, RECONNECT_BOUND_S)
    await sink.until(lambda: len(sink.values) >= before + 3, 5.0)  # ophyd-async's monitor resumed
    return down_s, time.monotonic() - restarted_at


async def test_a_killed_ioc_is_reported_disconnected_and_reconnects_with_values(restartable_ioc):
    loop = asyncio.get_running_loop()
    sink = Sink()
    name = restartable_ioc.pvname("sine")  # 10 Hz
    source = AsyncSignalSource("async:sine", loop, sink, epics_signal_r(float, f"ca://{name}", name="sine"))
    try:
        await opened(source)
        await sink.until(lambda: len(sink.values) >= 2)
        # The watch shares ophyd-async's channel (aioca: one per PV and loop): still one at the IOC.
        assert (await asyncio.to_thread(restartable_ioc.channel_counts))[name] == 1
        down_s, up_s = await until_reconnected(sink, restartable_ioc.stop, restartable_ioc.start)
        print(f"CA: disconnected after {down_s:.2f} s, values again {up_s:.2f} s after the restart")
        assert sink.connection == [True, False, True]
        assert abs(sink.values[-1].timestamp - time.time()) < 5
    finally:
        await asyncio.to_thread(source.close)
    count = len(sink.values)
    await asyncio.to_thread(restartable_ioc.stop)  # closed: the watch is gone too
    await asyncio.sleep(0.5)
    assert sink.connection == [True, False, True] and len(sink.values) == count


# --- connecting devices -----------------------------------------------------------------


class Hangs(Device):
    """A device whose connect never returns (a startup file's custom device gone wrong)."""

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.Event().wait()


class Pair(StandardReadable):
    def __init__(self, prefix: str, name: str = "") -> None:
        with self.add_children_as_readables():
            self.a = epics_signal_r(float, f"{prefix}v2")
            self.b = epics_signal_r(float, f"{prefix}missing")
        super().__init__(name)


async def test_a_failed_connect_is_reported_with_its_reason_and_others_connect(c_ioc):
    good = epics_signal_r(float, f"ca://{c_ioc.pvname('v3')}", name="good")
    bad = Pair(f"ca://{c_ioc.pvname('')}", name="bad")
    started = time.monotonic()
    results = await asyncio.to_thread(connect_devices_blocking, {"good": good, "bad": bad}, timeout=2.0)
    assert time.monotonic() - started < 5.0
    assert results["good"].ok and results["good"].error is None
    assert not results["bad"].ok
    assert "NotConnectedError" in results["bad"].error and f"{c_ioc.pvname('missing')}" in results["bad"].error
    assert "b:" in results["bad"].error and "a:" not in results["bad"].error.replace("ca:", "")


async def test_a_hanging_connect_times_out_without_holding_up_the_others():
    hangs = Hangs(name="hangs")
    soft = soft_signal_rw(float, 2.0, name="soft")
    started = time.monotonic()
    results = await asyncio.to_thread(connect_devices_blocking, {"hangs": hangs, "soft": soft}, timeout=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 4.0, elapsed
    assert results["soft"].ok
    assert results["hangs"].error == "hangs did not connect within 1 s"


# --- soft signals -----------------------------------------------------------------------


class Colour(StrictEnum):
    RED = "Red"
    GREEN = "Green"


async def test_soft_signals_stream_and_set():
    loop = asyncio.get_running_loop()
    number, colour = Sink(), Sink()
    x = soft_signal_rw(float, 1.5, name="x", units="mm", precision=2)
    c = soft_signal_rw(Colour, name="c")
    x_source = AsyncSignalSource("soft:x", loop, number, x)
    c_source = AsyncSignalSource("soft:c", loop, colour, c)
    try:
        info = await opened(x_source)
        assert (info.kind, info.units, info.precision, info.access) == ("float", "mm", 2, (True, True))
        await number.until(lambda: bool(number.values))
        assert number.values[0].value == 1.5 and number.values[0].severity == 0
        assert await put(x_source, 3.25) == (True, "")
        await number.until(lambda: number.values[-1].value == 3.25)

        info = await opened(c_source)
        assert (info.kind, info.enum_strs) == ("enum", ("Red", "Green"))
        await colour.until(lambda: bool(colour.values))
        assert colour.values[-1].value == 0
        assert await put(c_source, 1) == (True, "")
        await colour.until(lambda: colour.values[-1].value == 1)
        ok, message = await put(c_source, "Blue")
        assert not ok and "Blue" in message
    finally:
        await asyncio.to_thread(x_source.close)
        await asyncio.to_thread(c_source.close)


# --- ophyd-async's Motor on the demo IOC's motor record ------------------------------------


async def test_motor_moves_reports_done_and_refuses_out_of_limits(restartable_ioc):
    loop = asyncio.get_running_loop()
    sink = Sink()
    motor = Motor(restartable_ioc.pvname("mtr1"), name="am1")
    source = AsyncMovableSource("async:am1", loop, sink, motor)
    try:
        info = await opened(source)
        assert (info.kind, info.units, info.access) == ("float", "mm", (True, True))
        assert (info.lower_ctrl_limit, info.upper_ctrl_limit) == (-50.0, 50.0)
        await sink.until(lambda: bool(sink.values))
        assert await put(source, 2.0) == (True, "")
        # Done only once the motor arrived (DMOV), not when the IOC accepted VAL.
        assert restartable_ioc.caget("mtr1.RBV") == pytest.approx(2.0)
        await sink.until(lambda: sink.values[-1].value == pytest.approx(2.0))

        ok, message = await put(source, 500.0)
        assert not ok and "MotorLimitsError" in message and "500" in message
    finally:
        await asyncio.to_thread(source.close)


async def test_motor_stop_ends_the_move_short_of_its_target(restartable_ioc):
    loop = asyncio.get_running_loop()
    sink = Sink()
    motor = Motor(restartable_ioc.pvname("mtr1"), name="am1")
    source = AsyncMovableSource("async:am1", loop, sink, motor)
    try:
        await opened(source)
        outcome = asyncio.ensure_future(put(source, 40.0))  # 10 mm/s: about 4 s
        await sink.until(lambda: bool(sink.values) and sink.values[-1].value > 0.5)
        await asyncio.to_thread(source.stop)
        ok, message = await outcome
        assert not ok and "stop" in message.lower(), message
        assert restartable_ioc.caget("mtr1.RBV") < 30.0
    finally:
        await asyncio.to_thread(source.close)


# --- PV Access (pva://) through ophyd-async's p4p backend ---------------------------------


class PvaCIoc(ChildProcess):
    """bench/cioc.py serving PVA (QSRV2) on loopback ports of its own; ``stop`` kills it as a
    crash would, ``start`` serves on the same ports again."""

    prefix = "APVA:"
    label = "PVA C IOC"

    def __init__(self) -> None:
        super().__init__()
        self.ca_port, self.pva_port, self.broadcast = (free_port() for _ in range(3))

    def pvname(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def client_env(self) -> dict[str, str]:
        return {"EPICS_PVA_ADDR_LIST": HOST, "EPICS_PVA_AUTO_ADDR_LIST": "NO",
                "EPICS_PVA_SERVER_PORT": str(self.pva_port), "EPICS_PVA_BROADCAST_PORT": str(self.broadcast)}

    def env(self) -> dict[str, str]:
        return {**os.environ, "EPICS_PVAS_INTF_ADDR_LIST": HOST, "EPICS_PVAS_SERVER_PORT": str(self.pva_port),
                "EPICS_PVAS_BROADCAST_PORT": str(self.broadcast), "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
                "EPICS_PVAS_BEACON_ADDR_LIST": HOST}

    def command(self) -> list[str]:
        return [sys.executable, str(PROJECT_ROOT / "bench" / "cioc.py"), "--prefix", self.prefix, "--count", "2",
                "--rate", "10", "--setpoints", "1", "--big-size", "16", "--big-rate", "1", "--host", HOST,
                "--port", str(self.ca_port), "--pva"]

    def ready(self, line: str) -> bool:
        return line == f"READY {self.prefix} {self.ca_port}"


@pytest.fixture(scope="module")
def pva_ioc() -> Iterator[PvaCIoc]:
    """The module's PVA server, pointed at by ophyd-async's one p4p Context per process, which
    reads the EPICS_PVA_* environment at its first pva:// connect: set here, before that. A
    test may kill and restart it (on the same ports: the context keeps finding it)."""
    from ophyd_async.epics.core import _p4p

    if _p4p._context is not None:
        pytest.skip("ophyd-async's PVA context was made earlier in this process, for other servers")
    ioc = PvaCIoc()
    client_env = ioc.client_env()
    saved = {name: os.environ.get(name) for name in client_env}
    try:
        ioc.start()
        os.environ.update(client_env)
        yield ioc
    finally:
        ioc.stop()
        for name, value in saved.items():  # other modules' PVA clients are not pointed here
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def test_pva_signals_stream_and_set_beside_channel_access(pva_ioc, c_ioc):
    loop = asyncio.get_running_loop()
    counter, setpoint, ca_counter = Sink(), Sink(), Sink()
    sources = [
        AsyncSignalSource("pva:v0", loop, counter, epics_signal_r(float, f"pva://{pva_ioc.prefix}v0", name="pv0")),
        AsyncSignalSource("pva:sp0", loop, setpoint, epics_signal_rw(float, f"pva://{pva_ioc.prefix}sp0", name="psp0")),
        AsyncSignalSource("ca:v4", loop, ca_counter, epics_signal_r(float, f"ca://{c_ioc.pvname('v4')}", name="cv4")),
    ]
    try:
        infos = [await opened(source) for source in sources]
        assert [(i.kind, i.precision) for i in infos] == [("float", 3)] * 3
        assert [i.access[1] for i in infos] == [False, True, False]
        await counter.until(lambda: len(counter.values) >= 3)
        await ca_counter.until(lambda: len(ca_counter.values) >= 3)  # both protocols in one process
        recent = counter.values[-2:]
        assert recent[1].value - recent[0].value == pytest.approx(1.0)
        assert abs(recent[1].timestamp - time.time()) < 5
        assert await put(sources[1], 6.5) == (True, "")
        await setpoint.until(lambda: bool(setpoint.values) and setpoint.values[-1].value == 6.5)
    finally:
        for source in sources:
            await asyncio.to_thread(source.close)


async def test_a_killed_pva_server_is_reported_disconnected_and_reconnects_with_values(pva_ioc):
    loop = asyncio.get_running_loop()
    sink = Sink()
    signal = epics_signal_r(float, f"pva://{pva_ioc.pvname('v1')}", name="pv1")  # 10 Hz
    source = AsyncSignalSource("pva:v1", loop, sink, signal)
    try:
        await opened(source)
        await sink.until(lambda: len(sink.values) >= 2)
        down_s, up_s = await until_reconnected(sink, pva_ioc.stop, pva_ioc.start)
        print(f"PVA: disconnected after {down_s:.2f} s, values again {up_s:.2f} s after the restart")
        assert sink.connection == [True, False, True]
        recent = sink.values[-2:]
        assert recent[1].value - recent[0].value == pytest.approx(1.0)  # the restarted IOC counting
    finally:
        await asyncio.to_thread(source.close)
        if pva_ioc.proc is None:
            await asyncio.to_thread(pva_ioc.start)  # the module's other tests need it
