"""The demo IOC (devices.demo.ioc) seen by a real pyepics client, without mocks.

Put status comes from caproto's sync client: pyepics reports a put the IOC
refused as completed (its put callback drops the status).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import epics
import numpy as np
import pytest
from caproto import CaprotoError, CaprotoTimeoutError, ErrorResponseReceived
from caproto.sync.client import read as caproto_read
from caproto.sync.client import write as caproto_write

from devices.demo.ioc_pvs import LONGTEXT
from tests.support.ioc import IocProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]

# libca searches for a disconnected channel only on its 10 s "disconnect governor"
# tick, so reconnects take 0-10 s after the loss (measured 0.2-9.5 s), plus a search.
RECONNECT_BOUND_S = 15.0


class Recorder:
    """Collects pyepics value and connection callbacks; the test thread waits on them."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def on_value(self, **kwargs: Any) -> None:
        """Runs on the CA callback thread. Must not block."""
        self._add("value", kwargs)

    def on_connection(self, pvname: str | None = None, conn: bool = False, **_: Any) -> None:
        """Runs on the CA callback thread. Must not block."""
        self._add("conn", {"conn": conn})

    def _add(self, kind: str, kwargs: dict[str, Any]) -> None:
        with self._cond:
            self.events.append((time.monotonic(), kind, kwargs))
            self._cond.notify_all()

    def wait(self, kind: str, match: Callable[[dict[str, Any]], bool], timeout: float,
             since: float = 0.0) -> tuple[float, dict[str, Any]]:
        """The first event of ``kind`` at or after ``since`` that matches; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, k, kwargs in self.events:
                    if k == kind and at >= since and match(kwargs):
                        return at, kwargs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching {kind} event within {timeout} s")
                self._cond.wait(left)

    def values(self, since: float = 0.0) -> list[dict[str, Any]]:
        with self._cond:
            return [kw for at, k, kw in self.events if k == "value" and at >= since]


@pytest.fixture
def open_pv() -> Iterator[Callable[..., epics.PV]]:
    """Factory of connected pyepics PVs; their callbacks (and with clear=True, channels) go at teardown."""
    opened: list[tuple[epics.PV, bool]] = []

    def make(name: str, *, clear: bool = False, **kwargs: Any) -> epics.PV:
        pv = epics.PV(name, **kwargs)
        opened.append((pv, clear))
        assert pv.wait_for_connection(timeout=5), f"{name} did not connect"
        return pv

    yield make
    cleared: set[int] = set()
    for pv, clear in opened:
        chid = pv.chid
        pv.disconnect()
        if clear and chid.value not in cleared:  # clearing a chid twice crashes libca
            cleared.add(chid.value)
            epics.ca.clear_channel(chid)
    epics.ca.flush_io()  # clear_channel only queues the request


def severity_of(name: str) -> int:
    """The alarm severity as read now (not from a monitor)."""
    pv = epics.PV(name, form="time", auto_monitor=False)
    return int(pv.get_with_metadata(use_monitor=False, timeout=5)["severity"])


def put_status(name: str, value: Any) -> str:
    """Put with completion through caproto's client; return the CA status name.

    caproto's sync client occasionally loses its own fresh circuit during the handshake
    ("Disconnected during initialization"); that is the client, not the IOC, so retry.
    """
    for attempt in range(3):
        try:
            response = caproto_write(name, [value], notify=True, timeout=5, repeater=False)
        except ErrorResponseReceived as err:
            return err.args[0].status.name
        except CaprotoError:
            if attempt == 2:
                raise
            time.sleep(0.2)
            continue
        return response.status.name
    raise AssertionError("unreachable")


def test_motor_setpoint_metadata(ioc: IocProcess) -> None:
    m1 = epics.caget(ioc.pvname("m1:sp"), use_monitor=False)
    assert isinstance(m1, float)
    sp = epics.PV(ioc.pvname("m1:sp"), form="ctrl", auto_monitor=False)
    meta = sp.get_ctrlvars(timeout=5)
    assert meta["units"] == "mm" and meta["precision"] == 3
    assert (meta["lower_ctrl_limit"], meta["upper_ctrl_limit"]) == (-100.0, 100.0)
    assert (meta["lower_disp_limit"], meta["upper_disp_limit"]) == (-100.0, 100.0)
    m2 = epics.PV(ioc.pvname("m2:sp"), form="ctrl", auto_monitor=False).get_ctrlvars(timeout=5)
    assert m2["units"] == "deg" and (m2["lower_ctrl_limit"], m2["upper_ctrl_limit"]) == (-180.0, 180.0)
    rbv = epics.PV(ioc.pvname("m1:rbv"), form="ctrl", auto_monitor=False).get_ctrlvars(timeout=5)
    assert rbv["units"] == "mm" and rbv["precision"] == 3
    assert put_status(ioc.pvname("m1:sp"), 1e6) == "ECA_PUTFAIL"  # beyond the control limits
    assert put_status(ioc.pvname("m1:sp"), m1) == "ECA_NORMAL"  # clears caproto's WRITE alarm


@pytest.mark.timeout(20)
def test_readback_follows_setpoint_at_10_hz(ioc: IocProcess, open_pv: Callable[..., epics.PV]) -> None:
    rec = Recorder()
    rbv = open_pv(ioc.pvname("m1:rbv"), callback=rec.on_value)
    open_pv(ioc.pvname("m1:moving"), callback=rec.on_value)
    start = rbv.get(use_monitor=False)
    target = round(start + 2.0 if start < 90 else start - 2.0, 3)  # 0.4 s at 5 mm/s
    t0 = time.monotonic()
    assert ioc.caput("m1:sp", target) == 1
    rec.wait("value", lambda e: e["pvname"].endswith("moving") and e["value"] == 1, 2, since=t0)
    t_end, _ = rec.wait("value", lambda e: e["pvname"].endswith("rbv") and e["value"] == target, 5,
                        since=t0)
    rec.wait("value", lambda e: e["pvname"].endswith("moving") and e["value"] == 0, 2, since=t0)
    steps = [e["value"] for e in rec.values(since=t0) if e["pvname"].endswith("rbv")]
    assert len(steps) >= 3 and steps[-1] == target  # intermediate positions, not a jump
    assert 0.2 < t_end - t0 < 2.0


def test_scalars_enum_and_strings(ioc: IocProcess) -> None:
    sine = epics.PV(ioc.pvname("sine"), form="ctrl", auto_monitor=False)
    assert sine.wait_for_connection(5)
    meta = sine.get_ctrlvars(timeout=5)
    assert meta["units"] == "V" and meta["precision"] == 3
    first = sine.get(use_monitor=False)
    counter = ioc.caget("counter", use_monitor=False)
    time.sleep(1.2)
    assert sine.get(use_monitor=False) != first
    assert ioc.caget("counter", use_monitor=False) > counter
    assert isinstance(counter, int)

    mode = epics.PV(ioc.pvname("mode"), form="ctrl", auto_monitor=False)
    assert mode.wait_for_connection(5)
    assert list(mode.get_ctrlvars(timeout=5)["enum_strs"]) == ["Off", "On", "Fault"]
    assert ioc.caput("mode", "Fault") == 1
    assert ioc.caget("mode", as_string=True, use_monitor=False) == "Fault"
    assert ioc.caput("mode", 0) == 1

    assert ioc.caget("label", use_monitor=False) == "hello"
    assert epics.ca.field_type(epics.PV(ioc.pvname("label")).chid) == epics.dbr.STRING


def test_char_array_holds_utf8_text(ioc: IocProcess) -> None:
    pv = epics.PV(ioc.pvname("longtext"), auto_monitor=False)
    assert pv.wait_for_connection(5)
    assert epics.ca.field_type(pv.chid) == epics.dbr.CHAR
    assert epics.ca.element_count(pv.chid) == 256
    raw = pv.get(use_monitor=False)
    # Decode the bytes yourself: pyepics' as_string maps each byte to a character.
    assert bytes(raw).rstrip(b"\0").decode("utf-8") == LONGTEXT


def test_waveforms(ioc: IocProcess) -> None:
    wave = ioc.caget("wave", use_monitor=False)
    iwave = ioc.caget("iwave", use_monitor=False)
    assert isinstance(wave, np.ndarray) and wave.shape == (100,) and wave.dtype.kind == "f"
    assert sorted(iwave.tolist()) == list(range(16))
    time.sleep(0.7)  # both update at 2 Hz
    assert not np.array_equal(ioc.caget("wave", use_monitor=False), wave)
    assert not np.array_equal(ioc.caget("iwave", use_monitor=False), iwave)


def test_bigwave_arrives_whole_at_its_rate(ioc: IocProcess, open_pv: Callable[..., epics.PV]) -> None:
    rec = Recorder()
    pv = open_pv(ioc.pvname("bigwave"), callback=rec.on_value)
    assert epics.ca.element_count(pv.chid) == 10000
    t0 = time.monotonic()
    time.sleep(1.5)
    got = rec.values(since=t0)
    assert 8 <= len(got) <= 20  # 10 Hz
    assert all(len(e["value"]) == 10000 for e in got)


@pytest.mark.timeout(30)
def test_bigwave_size_and_rate_options(restartable_ioc: IocProcess,
                                       open_pv: Callable[..., epics.PV]) -> None:
    restartable_ioc.stop()
    restartable_ioc.extra_args = ["--bigwave-size", "2000", "--bigwave-rate", "20"]
    restartable_ioc.start()
    rec = Recorder()
    pv = open_pv(restartable_ioc.pvname("bigwave"), clear=True, callback=rec.on_value)
    assert epics.ca.element_count(pv.chid) == 2000
    t0 = time.monotonic()
    time.sleep(1.0)
    assert 14 <= len(rec.values(since=t0)) <= 26  # 20 Hz


def test_read_only_pvs_deny_writes(ioc: IocProcess) -> None:
    for suffix in ("ro", "m1:rbv", "m1:moving", "bigwave", "diag:channels"):
        pv = epics.PV(ioc.pvname(suffix), auto_monitor=False)
        assert pv.wait_for_connection(5)
        assert pv.read_access is True and pv.write_access is False, suffix
    assert ioc.caget("ro", use_monitor=False) == 42
    with pytest.raises(epics.ca.CASeverityException):
        ioc.caput("ro", 1)
    assert ioc.caget("ro", use_monitor=False) == 42


@pytest.mark.timeout(20)
def test_temp_alarm_severity_reaches_a_monitor(ioc: IocProcess,
                                               open_pv: Callable[..., epics.PV]) -> None:
    rec = Recorder()
    open_pv(ioc.pvname("temp"), form="time", callback=rec.on_value)
    for value, severity in ((20.0, 0), (40.0, 1), (60.0, 2), (20.0, 0)):
        def matches(e: dict[str, Any], v: float = value, s: int = severity) -> bool:
            return bool(e["value"] == v and e["severity"] == s)

        t0 = time.monotonic()
        assert ioc.caput("temp", value) == 1
        rec.wait("value", matches, 3, since=t0)
        time.sleep(0.3)  # a few sine updates: each PV has its own alarm state
        assert severity_of(ioc.pvname("temp")) == severity
        assert severity_of(ioc.pvname("sine")) == 0


@pytest.mark.timeout(15)
def test_slow_put_completes_after_two_seconds(ioc: IocProcess) -> None:
    value = round(time.time() % 100, 3)
    t0 = time.monotonic()
    assert ioc.caput("slow", value, wait=True, timeout=6) == 1
    assert 1.9 <= time.monotonic() - t0 < 3.5
    assert ioc.caget("slow", use_monitor=False) == value


def test_refused_put_fails_and_keeps_the_value(ioc: IocProcess) -> None:
    before = ioc.caget("refuse", use_monitor=False)
    assert put_status(ioc.pvname("refuse"), before + 1) == "ECA_PUTFAIL"
    assert ioc.caput("refuse", before + 2) == 1  # pyepics cannot tell
    assert ioc.caget("refuse", use_monitor=False) == before
    time.sleep(0.3)  # a few sine updates: they must not clear refuse's alarm
    assert severity_of(ioc.pvname("refuse")) == 2  # caproto sets WRITE/MAJOR when a putter raises


def test_clamp_stores_the_clamped_value(ioc: IocProcess) -> None:
    for written, stored in ((8.0, 5.0), (-3.0, 0.0), (2.5, 2.5)):
        assert put_status(ioc.pvname("clamp"), written) == "ECA_NORMAL"
        assert ioc.caget("clamp", use_monitor=False) == stored
    assert put_status(ioc.pvname("clamp"), 20.0) == "ECA_PUTFAIL"  # outside the declared -10..10
    assert ioc.caget("clamp", use_monitor=False) == 2.5
    assert put_status(ioc.pvname("clamp"), 2.5) == "ECA_NORMAL"  # clears caproto's WRITE alarm


@pytest.mark.timeout(40)
def test_flaky_disconnects_and_comes_back(ioc: IocProcess, open_pv: Callable[..., epics.PV]) -> None:
    rec = Recorder()
    name = ioc.pvname("flaky")
    open_pv(name, connection_callback=rec.on_connection, callback=rec.on_value)
    try:
        t0 = time.monotonic()
        assert ioc.caput("flaky:online", 0) == 1
        t_down, _ = rec.wait("conn", lambda e: e["conn"] is False, 3, since=t0)
        assert name not in ioc.channel_counts()
        with pytest.raises(CaprotoTimeoutError):  # searches are not answered either
            caproto_read(name, timeout=0.5, repeater=False)
        t1 = time.monotonic()
        assert ioc.caput("flaky:online", 1) == 1
        t_up, _ = rec.wait("conn", lambda e: e["conn"] is True, RECONNECT_BOUND_S, since=t1)
        print(f"flaky: down {t_down - t0:.2f} s after the put; back {t_up - t1:.2f} s after online=1")
        rec.wait("value", lambda e: True, 3, since=t_up)  # the monitor resumed
    finally:
        ioc.caput("flaky:online", 1)


def test_diag_channels_counts_one_channel_per_pv(ioc: IocProcess,
                                                 open_pv: Callable[..., epics.PV]) -> None:
    name = ioc.pvname("m3:moving")  # used by no other test
    a = open_pv(name)
    b = open_pv(name, form="ctrl")
    assert a.chid.value == b.chid.value  # pyepics shares one channel per name
    counts = ioc.channel_counts()
    assert counts[name] == 1
    assert counts[ioc.pvname("diag:channels")] >= 1  # the reader's own channel
    chid = a.chid
    a.disconnect()
    b.disconnect()
    epics.ca.clear_channel(chid)
    epics.ca.flush_io()  # clear_channel only queues the request
    deadline = time.monotonic() + 3
    while name in ioc.channel_counts():
        assert time.monotonic() < deadline, "channel not released"
        time.sleep(0.1)


def test_taken_port_is_reported(ioc: IocProcess) -> None:
    with pytest.raises(RuntimeError, match="in use"):
        IocProcess("DUP:", ioc.port).start(timeout=10)


@pytest.mark.timeout(40)
def test_killed_ioc_is_seen_down_and_reconnects_after_restart(
        restartable_ioc: IocProcess, open_pv: Callable[..., epics.PV]) -> None:
    rec = Recorder()
    open_pv(restartable_ioc.pvname("counter"), clear=True, connection_callback=rec.on_connection,
            callback=rec.on_value)
    t0 = time.monotonic()
    restartable_ioc.stop()
    rec.wait("conn", lambda e: e["conn"] is False, 3, since=t0)
    restartable_ioc.start()
    t_ready = time.monotonic()
    t_up, _ = rec.wait("conn", lambda e: e["conn"] is True, RECONNECT_BOUND_S, since=t_ready)
    print(f"restart: reconnected {t_up - t_ready:.2f} s after READY")
    rec.wait("value", lambda e: True, 3, since=t_up)  # the monitor resumed
