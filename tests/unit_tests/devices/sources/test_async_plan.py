"""Plans of ophyd-async objects (real soft signals and simulated devices; no IOC, no loop),
and the pure datakey/reading mappings the async sources use."""

from __future__ import annotations

import numpy as np
from ophyd import Signal as V1Signal
from ophyd_async.core import DeviceVector, StandardReadable, StrictEnum, soft_signal_rw
from ophyd_async.epics.motor import Motor
from ophyd_async.sim import SimMotor

from devices.channel_layer.topics import device_topic
from devices.sources.async_plan import (
    describe_tree,
    is_async_device,
    library_of,
    plan_async_device,
    resolve_async,
)
from devices.sources.async_sources import info_from_datakey, value_event
from devices.sources.device_plan import MAX_STREAMS, DevicePlan


class Mode(StrictEnum):
    OFF = "Off"
    ON = "On"


class Optics(StandardReadable):
    def __init__(self, name: str = "") -> None:
        with self.add_children_as_readables():
            self.gap = soft_signal_rw(float, 1.0, units="mm")
            self.mode = soft_signal_rw(Mode)
        self.slits = DeviceVector({1: soft_signal_rw(float), 2: soft_signal_rw(float)})
        self.axis = SimMotor()
        super().__init__(name)


class Many(StandardReadable):
    def __init__(self, n: int, name: str = "") -> None:
        self.channels = DeviceVector({i: soft_signal_rw(int) for i in range(n)})
        super().__init__(name)


def rows(plan: DevicePlan) -> list[tuple[str, str, str]]:
    return [(s.signal, s.path, s.role) for s in plan.streams]


def test_only_ophyd_async_objects_are_async_devices():
    assert is_async_device(soft_signal_rw(float, name="x"))
    assert is_async_device(SimMotor(name="m"))
    assert not is_async_device(V1Signal(name="v1"))
    assert not is_async_device(object())
    assert library_of(SimMotor(name="m")) == "ophyd-async" and library_of(V1Signal(name="v")) == "ophyd"


def test_a_signal_streams_its_own_value():
    plan = plan_async_device("x", soft_signal_rw(float, 1.0, name="x"))
    assert (plan.kind, rows(plan), plan.set_default) == ("signal", [("x", "", "value")], "x")
    assert plan.streams[0].topic == device_topic("x", "x")
    assert plan.device_class == "ophyd_async.core._signal.SignalRW"


def test_a_motor_streams_readback_setpoint_and_done_move_with_ophyd_v1_names():
    plan = plan_async_device("m1", Motor("SIM:m1", name="m1"))
    assert plan.kind == "positioner"
    assert rows(plan) == [("m1_user_readback", "", "readback"),
                          ("m1_user_setpoint", "user_setpoint", "value"),
                          ("m1_motor_done_move", "motor_done_move", "value")]
    assert plan.set_default == "m1_user_readback"
    assert plan.component("user_setpoint") is plan.streams[1]  # REST names a component by path


def test_a_simulated_motor_is_a_positioner():
    plan = plan_async_device("sm", SimMotor(name="sm"))
    assert plan.kind == "positioner"
    assert rows(plan)[0] == ("sm_user_readback", "", "readback")


def test_a_device_streams_every_child_signal_and_its_movables():
    optics = Optics(name="optics")
    plan = plan_async_device("optics", optics)
    assert plan.kind == "device" and plan.set_default is None and not plan.truncated
    assert rows(plan) == [
        ("optics_gap", "gap", "value"),
        ("optics_mode", "mode", "value"),
        ("optics_slits_1", "slits.1", "value"),
        ("optics_slits_2", "slits.2", "value"),
        ("optics_axis_user_readback", "axis", "readback"),
        ("optics_axis_user_setpoint", "axis.user_setpoint", "value"),
    ]
    assert resolve_async(optics, "slits.2") is optics.slits[2]
    assert resolve_async(optics, "axis") is optics.axis
    assert resolve_async(optics, "") is optics
    plan_round_trip = DevicePlan.from_dict(plan.as_dict())
    assert plan_round_trip == plan


def test_resolving_a_missing_component_raises_attribute_error():
    optics = Optics(name="optics")
    for path in ("nope", "slits.9", "gap.x"):
        try:
            resolve_async(optics, path)
        except AttributeError:
            continue
        raise AssertionError(f"{path} resolved")


def test_streams_are_capped_like_ophyd_v1_devices():
    plan = plan_async_device("many", Many(MAX_STREAMS + 50, name="many"))
    assert plan.truncated and len(plan.streams) == MAX_STREAMS


def test_the_component_tree_names_library_classes_and_pvs():
    tree = describe_tree(Motor("SIM:m1", name="m1"))
    assert tree["library"] == "ophyd-async" and tree["class"] == "ophyd_async.epics.motor.Motor"
    nodes = {node["attr"]: node for node in tree["components"]}
    assert nodes["user_readback"]["pv"] == "ca://SIM:m1.RBV"
    assert nodes["user_readback"]["kind"] == "signal_r"
    assert nodes["user_setpoint"]["kind"] == "signal_rw" and nodes["motor_stop"]["kind"] == "signal_w"
    optics = describe_tree(Optics(name="optics"))["components"]
    axis = next(node for node in optics if node["attr"] == "axis")
    assert axis["kind"] == "movable" and axis["class"] == "SimMotor" and axis["children"]
    slits = next(node for node in optics if node["attr"] == "slits")
    assert [child["attr"] for child in slits["children"]] == ["1", "2"]


# --- the mappings behind AsyncSignalSource (pure) ---------------------------------------


def test_datakeys_map_to_channel_info():
    info = info_from_datakey({"dtype": "number", "shape": [], "dtype_numpy": "<f8", "units": "mm", "precision": 3,
                              "limits": {"control": {"low": -5.0, "high": 5.0}, "display": {"low": -9, "high": 9}},
                              "source": "ca://X"}, writable=True)
    assert (info.kind, info.count, info.units, info.precision) == ("float", 1, "mm", 3)
    assert (info.lower_ctrl_limit, info.upper_ctrl_limit, info.access) == (-5.0, 5.0, (True, True))
    display_only = info_from_datakey({"dtype": "number", "shape": [], "dtype_numpy": "<i4",
                                      "limits": {"display": {"low": 0, "high": 10}}}, writable=False)
    assert (display_only.kind, display_only.lower_ctrl_limit, display_only.upper_ctrl_limit) == ("int", 0.0, 10.0)
    assert display_only.access == (True, False)
    enum = info_from_datakey({"dtype": "string", "shape": [], "choices": ["Off", "On"]}, writable=True)
    assert (enum.kind, enum.enum_strs) == ("enum", ("Off", "On"))
    array = info_from_datakey({"dtype": "array", "shape": [16], "dtype_numpy": "<u2"}, writable=False)
    assert (array.kind, array.count) == ("int", 16)
    assert info_from_datakey({"dtype": "boolean", "shape": []}, writable=True).kind == "int"
    assert info_from_datakey({"dtype": "string", "shape": []}, writable=True).kind == "string"
    nan_limits = info_from_datakey({"dtype": "number", "limits": {"control": {"low": float("nan")}}}, writable=True)
    assert nan_limits.lower_ctrl_limit is None


def test_readings_map_to_value_events():
    event = value_event({"value": np.float64(1.5), "timestamp": 12.5, "alarm_severity": 1}, None)
    assert (event.value, event.timestamp, event.severity, event.status) == (1.5, 12.5, 1, None)
    assert type(event.value) is float
    assert value_event({"value": Mode.ON, "timestamp": 1.0, "alarm_severity": 0}, ("Off", "On")).value == 1
    assert value_event({"value": "On", "timestamp": 1.0, "alarm_severity": 0}, ("Off", "On")).value == 1
    assert value_event({"value": True, "timestamp": 1.0, "alarm_severity": 0}, None).value == 1
    assert value_event({"value": 2.0, "timestamp": 1.0, "alarm_severity": -1}, None).severity == 3  # INVALID
    array = np.arange(4)
    assert value_event({"value": array, "timestamp": 1.0, "alarm_severity": 0}, None).value is array
