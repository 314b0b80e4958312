"""/api/v1/device-socket against real devices: ophyd objects from startup files on a caproto IOC."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings

from devices.services.runtime import get_hub

pytestmark = [pytest.mark.system, pytest.mark.timeout(90), pytest.mark.django_db(transaction=True)]

FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"
PATH = "/api/v1/device-socket"


def value_of(device: str, signal: str | None = None):
    return lambda m: (m.get("device") == device and "value" in m and m.get("sub_type") != "meta"
                      and (signal is None or m.get("signal") == signal))


def meta_of(device: str, signal: str | None = None):
    return lambda m: (m.get("device") == device and m.get("sub_type") == "meta"
                      and (signal is None or m.get("signal") == signal))


def reply(request_id):
    return lambda m: m.get("id") == request_id


@pytest.fixture
def startup_dir(tmp_path):
    folder = tmp_path / "startup"
    folder.mkdir()
    for name in ("00_signals.py", "10_device.py", "20_pseudo.py"):
        shutil.copy(FILES / name, folder / name)
    original = settings.OAS
    settings.OAS = replace(original, startup_dir=str(folder), startup_timeout_s=10.0)
    yield folder
    settings.OAS = original


@pytest.fixture
async def loaded(ioc, startup_dir):
    hub = await get_hub()
    outcome = await hub.reload_devices(60.0)
    assert outcome["status"] == "ok", outcome
    return outcome


async def test_subscribe_signal_gets_summary_meta_and_value(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "m1_sp", "id": 1})
    summary, meta, value = await client.expect_all(reply(1), meta_of("m1_sp"), value_of("m1_sp"))
    assert summary["subscribed"] == ["m1_sp"] and summary["failed"] == []
    assert summary["details"]["m1_sp"]["kind"] == "signal"
    assert meta["signal"] == "m1_sp" and meta["obj"] == "m1_sp" and meta["units"] == "mm"
    assert meta["lower_ctrl_limit"] == -100.0 and meta["connected"] is True
    assert value["signal"] == "m1_sp" and value["connected"] is True and value["write_access"] is True
    assert isinstance(value["value"], float)


async def test_custom_device_streams_each_signal_with_aggregate_connection(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "devices": ["stage"], "id": "s"})
    summary = await client.next(reply("s"))  # replies go out before stream data
    assert summary["subscribed"] == ["stage"]
    assert summary["details"]["stage"]["signals"] == ["stage_sp", "stage_rbv"]
    tree = summary["details"]["stage"]["components"]
    assert [(c["attr"], c["class"], c["pv"]) for c in tree] == [("sp", "EpicsSignal", "TST:m2:sp"),
                                                               ("rbv", "EpicsSignalRO", "TST:m2:rbv")]
    # Once both signals are connected, each signal's messages carry the device's state: connected.
    sp_up, rbv_up = await client.expect_all(lambda m: value_of("stage", "stage_sp")(m) and m["connected"],
                                            lambda m: value_of("stage", "stage_rbv")(m) and m["connected"])
    assert sp_up["signal_connected"] and rbv_up["signal_connected"]
    assert rbv_up["write_access"] is False and sp_up["write_access"] is True


async def test_unknown_device_fails_in_the_summary_with_the_known_names(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "devices": ["m1_sp", "nope"], "id": 2})
    summary = await client.next(reply(2))
    assert summary["subscribed"] == ["m1_sp"]
    [failure] = summary["failed"]
    assert failure["device"] == "nope" and failure["code"] == "unknown_device"
    assert "not in the device registry" in failure["error"] and "stage" in failure["error"]


async def test_set_signal_done_then_errors_for_limits_type_and_read_only(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "m1_sp"})
    await client.next(value_of("m1_sp"))
    await client.send({"action": "set", "device": "m1_sp", "value": 4.5, "timeout": 5, "id": "ok"})
    done, value = await client.expect_all(reply("ok"), lambda m: value_of("m1_sp")(m) and m["value"] == 4.5)
    assert done["status"] == "done" and done["message"].startswith("Successfully set m1_sp")
    assert done["device"] == "m1_sp" and done["signal"] == "m1_sp"

    await client.send({"action": "set", "device": "m1_sp", "value": 500, "id": "lim"})
    err = await client.next(reply("lim"))
    assert err["code"] == "out_of_limits" and "m1_sp" in err["error"]
    await client.send({"action": "set", "device": "m1_sp", "value": "fast", "id": "bad"})
    assert (await client.next(reply("bad")))["code"] == "bad_value"
    await client.send({"action": "set", "device": "m1_rbv", "value": 1, "id": "ro"})
    err = await client.next(reply("ro"))
    assert err["code"] == "read_only" and "m1_rbv" in err["error"]
    await client.send({"action": "set", "device": "ghost", "value": 1, "id": "unk"})
    err = await client.next(reply("unk"))
    assert err["code"] == "unknown_device" and err["action"] == "set"


async def test_pseudo_positioner_moves_an_axis_and_needs_a_signal_name(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "slit", "id": 1})
    summary = await client.next(reply(1))
    assert summary["details"]["slit"]["kind"] == "pseudo"
    assert summary["details"]["slit"]["signals"] == ["slit_gap", "slit_centre", "slit_top", "slit_bottom"]
    await client.send({"action": "set", "device": "slit", "value": 1.0, "id": "which"})
    err = await client.next(reply("which"))
    assert err["code"] == "bad_field" and "slit_gap" in err["error"]
    await client.send({"action": "set", "device": "slit", "signal": "slit_gap", "value": 4.0, "id": "gap"})
    done, top = await client.expect_all(
        reply("gap"), lambda m: value_of("slit", "slit_top")(m) and m["value"] == pytest.approx(2.0))
    assert done["status"] == "done" and done["signal"] == "slit_gap"
    await client.send({"action": "set", "device": "slit", "signal": "slit_nope", "value": 1, "id": "x"})
    assert (await client.next(reply("x")))["code"] == "bad_field"


async def test_unsubscribe_single_and_many_with_summaries(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "devices": ["m1_sp", "stage", "slit"], "id": 1})
    await client.next(reply(1))
    await client.send({"action": "unsubscribe", "device": "m1_sp", "id": 2})
    assert (await client.next(reply(2)))["unsubscribed"] == ["m1_sp"]
    await client.send({"action": "unsubscribe", "devices": ["stage", "slit", "never"], "id": 3})
    summary = await client.next(reply(3))
    assert summary == {"action": "unsubscribe", "unsubscribed": ["stage", "slit"], "not_subscribed": ["never"],
                       "id": 3}
    await client.send({"action": "refresh", "id": 4})
    refreshed = await client.next(reply(4))
    assert refreshed["devices"] == 0
    assert [m for m in await client.drain(0.5) if "device" in m] == []


async def test_refresh_resends_current_values(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "m1_sp"})
    await client.next(value_of("m1_sp"))
    await client.drain(0.3)
    await client.send({"action": "refresh", "id": "r"})
    answer, meta, value = await client.expect_all(reply("r"), meta_of("m1_sp"), value_of("m1_sp"))
    assert answer["message"] == "Refreshed 1 devices" and value["connected"] is True


async def test_one_clients_unsubscribe_leaves_the_other_streaming(loaded, ws):
    a, b = await ws(PATH), await ws(PATH)
    for client in (a, b):
        await client.send({"action": "subscribe", "device": "m1_sp"})
        await client.next(value_of("m1_sp"))
    await a.send({"action": "unsubscribe", "device": "m1_sp", "id": 1})
    await a.next(reply(1))
    await b.send({"action": "set", "device": "m1_sp", "value": -3.25, "id": 2})
    await b.expect_all(reply(2), lambda m: value_of("m1_sp")(m) and m["value"] == -3.25)


async def test_read_only_subscription_refuses_sets(loaded, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribeReadOnly", "device": "m1_sp"})
    value = await client.next(value_of("m1_sp"))
    assert value["write_access"] is False
    await client.send({"action": "set", "device": "m1_sp", "value": 1, "id": 9})
    err = await client.next(reply(9))
    assert err["code"] == "read_only" and err["id"] == 9


async def test_bad_requests_get_errors_and_the_socket_stays(loaded, ws):
    client = await ws(PATH)
    await client.send("not json")
    assert (await client.next())["code"] == "bad_json"
    await client.send({"action": "fly", "id": 1})
    err = await client.next(reply(1))
    assert err["code"] == "unknown_action" and '"device": "motor1"' in err["error"]
    await client.send({"action": "subscribe", "pv": "m1_sp", "id": 2})
    err = await client.next(reply(2))
    assert err["code"] == "missing_field" and "'devices'" in err["error"]
    await client.send({"action": "set", "device": "m1_sp", "id": 3})
    assert (await client.next(reply(3)))["code"] == "missing_field"
    await client.send({"action": "subscribe", "device": "m1_sp", "id": 4})
    assert (await client.next(reply(4)))["subscribed"] == ["m1_sp"]


GHOST = "from ophyd import EpicsSignal\nghost = EpicsSignal('TST:does_not_exist', name='ghost')\n"


async def test_subscribe_safely_confirms_connected_devices_and_refuses_dead_ones(loaded, startup_dir, ws):
    (startup_dir / "70_ghost.py").write_text(GHOST)
    hub = await get_hub()
    assert "ghost" in (await hub.reload_devices(60.0))["devices"]
    client = await ws(PATH)
    await client.send({"action": "subscribeSafely", "devices": ["stage", "ghost"], "id": "safe"})
    summary, _ = await client.expect_all(reply("safe"), value_of("stage", "stage_sp"), timeout=15)
    assert summary["subscribed"] == ["stage"]
    [failure] = summary["failed"]
    assert failure["device"] == "ghost" and "did not connect" in failure["error"] and "ghost" in failure["error"]
    await client.send({"action": "set", "device": "ghost", "value": 1, "timeout": 1, "id": "g"})
    err = await client.next(reply("g"), timeout=15)
    assert err["code"] == "not_connected" and "ghost" in err["error"]


async def test_plain_subscribe_to_a_dead_device_reports_it_not_connected(loaded, startup_dir, ws):
    (startup_dir / "70_ghost.py").write_text(GHOST)
    await (await get_hub()).reload_devices(60.0)
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "ghost", "id": 1})
    assert (await client.next(reply(1)))["subscribed"] == ["ghost"]
    value = await client.next(value_of("ghost"), timeout=15)
    assert value["connected"] is False and value["value"] is None


async def test_reload_rebinds_subscribers_to_the_new_object_or_says_gone(loaded, startup_dir, ws, async_client):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "devices": ["m1_sp", "stage"], "id": 1})
    await client.next(reply(1))
    await client.expect_all(meta_of("m1_sp"), value_of("stage", "stage_sp"))
    # The edited file points m1_sp at another PV (other units) and no longer defines stage.
    (startup_dir / "00_signals.py").write_text(
        "from ophyd import EpicsSignal\nm1_sp = EpicsSignal('TST:m3:sp', name='m1_sp')\n")
    (startup_dir / "10_device.py").unlink()
    response = await async_client.post("/api/v1/load-devices")
    assert response.status_code == 200 and response.json()["removed"] == ["m1_rbv", "stage"]
    gone, meta = await client.expect_all(
        lambda m: m.get("code") == "device_gone",
        lambda m: meta_of("m1_sp")(m) and m["units"] == "um" and m["connected"])
    assert gone["device"] == "stage" and "no longer" in gone["error"]
    await client.send({"action": "set", "device": "m1_sp", "value": 12.5, "id": "after"})
    await client.expect_all(reply("after"), lambda m: value_of("m1_sp")(m) and m["value"] == 12.5)
    await client.send({"action": "unsubscribe", "device": "stage", "id": 2})
    assert (await client.next(reply(2)))["not_subscribed"] == ["stage"]


MOTOR = "from ophyd import EpicsMotor\nmotor1 = EpicsMotor('TST:mtr2', name='motor1')\n"


@pytest.fixture
async def motor(ioc, startup_dir):
    (startup_dir / "30_motor.py").write_text(MOTOR)
    outcome = await (await get_hub()).reload_devices(60.0)
    assert "motor1" in outcome["devices"], outcome


async def test_motor_streams_readback_moves_to_completion_and_honours_limits(motor, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "motor1", "id": 1})
    summary, meta, first = await client.expect_all(
        reply(1), lambda m: meta_of("motor1", "motor1_user_readback")(m) and m["connected"],
        lambda m: value_of("motor1", "motor1_user_readback")(m) and m["connected"], timeout=15)
    details = summary["details"]["motor1"]
    assert details["kind"] == "positioner" and details["set_default"] == "motor1_user_readback"
    assert details["signals"] == ["motor1_user_readback", "motor1_user_setpoint", "motor1_motor_done_move"]
    assert (meta["lower_ctrl_limit"], meta["upper_ctrl_limit"], meta["units"]) == (0.0, 360.0, "deg")
    assert first["write_access"] is True  # the readback is read-only, but a set moves the motor

    target = 90.0 if first["value"] < 45 else 10.0  # 35+ degrees at 45 deg/s: most of a second
    await client.send({"action": "set", "device": "motor1", "value": target, "timeout": 20, "id": "mv"})
    readbacks: list[float] = []
    last: dict = {}
    while True:
        msg = await client.next(timeout=25)
        if value_of("motor1", "motor1_user_readback")(msg):
            readbacks.append(msg["value"])
            last = msg
        if msg.get("id") == "mv":
            done = msg
            break
    assert done["status"] == "done" and done["signal"] == "motor1_user_readback", done
    assert done["duration"] > 0.5  # answered when the move ended, not when it started
    assert len(readbacks) >= 3 and len(set(readbacks)) >= 3  # positions on the way, not just the end
    arrived = last  # the final position may come before or after the reply
    if last.get("value") != pytest.approx(target, abs=1e-3):
        arrived = await client.next(lambda m: value_of("motor1", "motor1_user_readback")(m)
                                    and m["value"] == pytest.approx(target, abs=1e-3), timeout=5)
    assert arrived["connected"] is True
    # The readback's timestamp is the IOC's, as on the pv-socket (ophyd's motor event has its own).
    pv_client = await ws("/api/v1/pv-socket")
    await pv_client.send({"action": "subscribe", "pv": "TST:mtr2.RBV"})
    rbv = await pv_client.next(lambda m: m.get("pv") == "TST:mtr2.RBV" and "value" in m and m.get("sub_type") != "meta")
    assert rbv["value"] == arrived["value"] and rbv["timestamp"] == arrived["timestamp"]

    await client.send({"action": "set", "device": "motor1", "value": 400, "id": "far"})
    err = await client.next(reply("far"))
    assert err["code"] == "out_of_limits" and "360" in err["error"]
    start = (target + 170.0) % 360.0
    await client.send({"action": "set", "device": "motor1", "value": start, "timeout": 0.3, "id": "slow"})
    err = await client.next(reply("slow"), timeout=10)
    assert err["code"] == "timeout"


async def test_stop_halts_a_motor_move_short_of_its_target(motor, ws):
    client = await ws(PATH)
    await client.send({"action": "subscribe", "device": "motor1", "id": 1})
    await client.next(reply(1))
    # An earlier test may have left a move running: start from a motor at rest.
    await client.next(lambda m: value_of("motor1", "motor1_motor_done_move")(m) and m["value"] == 1
                      and m["connected"], timeout=15)
    await client.send({"action": "refresh", "id": "at-rest"})
    _, first = await client.expect_all(reply("at-rest"), value_of("motor1", "motor1_user_readback"))
    target = 350.0 if first["value"] < 180 else 5.0  # several seconds of travel at 45 deg/s
    await client.send({"action": "set", "device": "motor1", "value": target, "timeout": 30, "id": "mv"})
    await client.next(lambda m: value_of("motor1", "motor1_motor_done_move")(m) and m["value"] == 0, timeout=10)
    await client.send({"action": "stop", "device": "motor1", "id": "halt"})
    stopped, ended = await client.expect_all(reply("halt"), reply("mv"), timeout=15)
    assert stopped["status"] == "done" and stopped["action"] == "stop"
    assert ended["action"] == "set" and ended["code"] == "ioc_refused" and "stopped at" in ended["error"]
    await client.send({"action": "refresh", "id": "r"})
    _, position = await client.expect_all(reply("r"), value_of("motor1", "motor1_user_readback"))
    assert abs(position["value"] - target) > 20
    await client.send({"action": "stop", "device": "m1_sp", "id": "nope"})
    assert (await client.next(reply("nope")))["code"] == "not_subscribed"
