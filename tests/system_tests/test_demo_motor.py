"""ophyd's EpicsMotor against the demo IOC's motor records (devices.demo.motor), without mocks.

CA calls run on the test (main) thread, which tests/conftest.py attached to the one CA
context at import; ophyd's dispatcher threads join the context that was current when ophyd
was first imported, which is after that. Put status comes from caproto's sync client, since
pyepics reports a put the IOC refused as completed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import epics
import pytest
from caproto import CaprotoError, ErrorResponseReceived
from caproto.sync.client import write as caproto_write
from ophyd import EpicsMotor
from ophyd.utils import LimitError

from tests.support.ioc import IocProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]

MOVE_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def mtr1(ioc: IocProcess) -> Iterator[EpicsMotor]:
    """TST:mtr1 (-50..50 mm at 10 mm/s) as an ophyd EpicsMotor, connected."""
    motor = EpicsMotor(ioc.pvname("mtr1"), name="m")
    motor.wait_for_connection(timeout=10)
    yield motor
    motor.destroy()


class Events:
    """(signal attribute, value) pairs from ophyd subscriptions, in arrival order."""

    def __init__(self, *signals: Any) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, Any]] = []
        self._subscriptions = [(signal, signal.subscribe(self._on_value, run=False)) for signal in signals]

    def _on_value(self, obj: Any = None, value: Any = None, **_: Any) -> None:
        """Runs on ophyd's dispatcher thread. Must not block."""
        with self._lock:
            self._events.append((obj.attr_name, value))

    def values(self, attr: str) -> list[Any]:
        with self._lock:
            return [value for name, value in self._events if name == attr]

    def close(self) -> None:
        for signal, token in self._subscriptions:
            signal.unsubscribe(token)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def put_status(name: str, value: float) -> str:
    """Put with completion through caproto's client; return the CA status name.

    caproto's sync client occasionally loses its fresh circuit during the handshake; retry.
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


def test_connects_as_a_configured_motor_record(ioc: IocProcess, mtr1: EpicsMotor) -> None:
    assert ioc.caget("mtr1.RTYP") == "motor"
    assert mtr1.limits == (-50.0, 50.0)
    assert mtr1.egu == "mm" and mtr1.precision == 3
    assert mtr1.velocity.get() == 10.0
    assert (mtr1.high_limit_travel.get(), mtr1.low_limit_travel.get()) == (50.0, -50.0)
    assert (mtr1.high_limit_switch.get(), mtr1.low_limit_switch.get()) == (0, 0)
    assert ioc.caget("mtr1.LVIO") == 0  # caproto's default is 1


def test_second_motor_has_its_own_units_and_limits(ioc: IocProcess) -> None:
    motor = EpicsMotor(ioc.pvname("mtr2"), name="m2")
    try:
        motor.wait_for_connection(timeout=10)
        assert motor.limits == (0.0, 360.0) and motor.egu == "deg"
        assert motor.velocity.get() == 45.0
        start = motor.position
        target = start + 9.0 if start < 300 else start - 9.0  # 0.2 s at 45 deg/s
        motor.set(target).wait(MOVE_TIMEOUT)
        assert motor.position == pytest.approx(target)
    finally:
        motor.destroy()


def test_set_moves_at_velo_and_completes_on_dmov(ioc: IocProcess, mtr1: EpicsMotor) -> None:
    mtr1.set(0.0).wait(MOVE_TIMEOUT)
    events = Events(mtr1.motor_is_moving, mtr1.motor_done_move, mtr1.user_readback)
    try:
        t0 = time.monotonic()
        status = mtr1.set(3.0)  # 0.3 s at 10 mm/s
        status.wait(MOVE_TIMEOUT)
        took = time.monotonic() - t0
        assert status.success
        # The Status finishes inside ophyd's own DMOV callback, before ours has run.
        wait_until(lambda: events.values("motor_done_move") == [0, 1], 2, "DMOV 0 then 1")
    finally:
        events.close()
    assert mtr1.position == pytest.approx(3.0)
    assert ioc.caget("mtr1.RBV", use_monitor=False) == pytest.approx(3.0)
    assert 1 in events.values("motor_is_moving") and not mtr1.moving
    assert len(events.values("user_readback")) >= 3  # intermediate positions, not a jump
    assert 0.2 < took < 3.0


def test_zero_length_move_still_completes(mtr1: EpicsMotor) -> None:
    here = mtr1.position
    status = mtr1.set(here)
    status.wait(3)  # would hang if DMOV did not drop and rise again
    assert status.success and mtr1.position == here


def test_ophyd_refuses_a_set_beyond_the_soft_limits(mtr1: EpicsMotor) -> None:
    before = mtr1.position
    with pytest.raises(LimitError):
        mtr1.set(80.0)
    assert mtr1.user_setpoint.get(use_monitor=False) == pytest.approx(before)
    assert mtr1.position == before


def test_ioc_refuses_a_put_beyond_the_soft_limits(ioc: IocProcess, mtr1: EpicsMotor) -> None:
    before = ioc.caget("mtr1", use_monitor=False)
    assert ioc.caput("mtr1", 80.0) == 1  # pyepics cannot tell
    assert put_status(ioc.pvname("mtr1"), 80.0) == "ECA_PUTFAIL"
    assert put_status(ioc.pvname("mtr1"), -80.0) == "ECA_PUTFAIL"
    time.sleep(0.2)  # a few ticks: nothing starts moving
    assert ioc.caget("mtr1", use_monitor=False) == before
    assert ioc.caget("mtr1.RBV", use_monitor=False) == before
    assert ioc.caget("mtr1.DMOV", use_monitor=False) == 1
    assert ioc.caget("mtr1.LVIO", use_monitor=False) == 0  # refused, not accepted with LVIO
    mtr1.set(before).wait(MOVE_TIMEOUT)  # an accepted write clears caproto's WRITE alarm on VAL


def test_writing_hlm_and_llm_changes_the_limits_clients_see(ioc: IocProcess, mtr1: EpicsMotor) -> None:
    mtr1.set(0.0).wait(MOVE_TIMEOUT)
    try:
        assert ioc.caput("mtr1.HLM", 20.0) == 1
        wait_until(lambda: mtr1.limits == (-50.0, 20.0), 3, "ophyd sees HLM=20")
        with pytest.raises(LimitError):
            mtr1.set(30.0)
        assert put_status(ioc.pvname("mtr1"), 30.0) == "ECA_PUTFAIL"
        assert ioc.caput("mtr1.LLM", -10.0) == 1
        wait_until(lambda: mtr1.limits == (-10.0, 20.0), 3, "ophyd sees LLM=-10")
        ctrl = epics.PV(ioc.pvname("mtr1"), form="ctrl", auto_monitor=False).get_ctrlvars(timeout=5)
        assert (ctrl["lower_ctrl_limit"], ctrl["upper_ctrl_limit"]) == (-10.0, 20.0)
    finally:
        ioc.caput("mtr1.HLM", 50.0)
        ioc.caput("mtr1.LLM", -50.0)
    wait_until(lambda: mtr1.limits == (-50.0, 50.0), 3, "limits restored")
    mtr1.set(30.0).wait(MOVE_TIMEOUT)  # allowed again; also clears VAL's WRITE alarm
    assert mtr1.position == pytest.approx(30.0)


def test_stop_ends_a_long_move_short_of_the_target(ioc: IocProcess, mtr1: EpicsMotor) -> None:
    mtr1.set(0.0).wait(MOVE_TIMEOUT)
    status = mtr1.set(-40.0)  # 4 s at 10 mm/s
    wait_until(lambda: mtr1.moving and mtr1.position < -1.0, 3, "moving toward -40")
    assert ioc.caput("mtr1.STOP", 1) == 1
    status.wait(2)
    assert status.success  # ophyd fails a move only on a limit switch or an alarm
    stopped = mtr1.position
    assert -30.0 < stopped < -1.0
    assert ioc.caget("mtr1.DMOV", use_monitor=False) == 1
    assert ioc.caget("mtr1.MOVN", use_monitor=False) == 0
    assert ioc.caget("mtr1.STOP", use_monitor=False) == 0  # reset, as the motor record does
    assert ioc.caget("mtr1", use_monitor=False) == stopped  # VAL is where it stopped
    time.sleep(0.3)
    assert mtr1.position == stopped  # and it stays there
