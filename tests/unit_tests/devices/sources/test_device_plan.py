"""What the device socket streams for each kind of ophyd object (soft objects, no IOC)."""

from ophyd import Component as Cpt
from ophyd import Device, PseudoPositioner, PseudoSingle, Signal, SoftPositioner
from ophyd.pseudopos import pseudo_position_argument, real_position_argument

from devices.channel_layer.topics import device_topic, parse_device_topic, topic_label
from devices.sources import device_plan
from devices.sources.device_plan import DevicePlan, plan_device, resolve


class Inner(Device):
    x = Cpt(Signal, value=1.0)
    axis = Cpt(SoftPositioner, init_pos=0.0)


class Outer(Device):
    a = Cpt(Signal, value=0)
    inner = Cpt(Inner)


class OneAxis(PseudoPositioner):
    p = Cpt(PseudoSingle)
    r = Cpt(SoftPositioner, init_pos=2.0)

    @pseudo_position_argument
    def forward(self, pseudo):
        return self.RealPosition(r=pseudo.p * 2)

    @real_position_argument
    def inverse(self, real):
        return self.PseudoPosition(p=real.r / 2)


def test_signal_streams_itself_and_is_the_set_default():
    plan = plan_device("sig", Signal(name="sig", value=3))
    assert plan.kind == "signal" and [s.signal for s in plan.streams] == ["sig"]
    assert plan.set_default == "sig" and plan.streams[0].topic == device_topic("sig", "sig")


def test_nested_device_streams_leaf_signals_and_positioners_by_path():
    outer = Outer(name="out")
    plan = plan_device("out", outer)
    assert plan.kind == "device"
    assert [(s.signal, s.path, s.role) for s in plan.streams] == [
        ("out_a", "a", "value"), ("out_inner_x", "inner.x", "value"), ("out_inner_axis", "inner.axis", "readback")]
    assert plan.set_default is None  # several signals: a set must name one
    assert resolve(outer, "inner.axis") is outer.inner.axis
    tree = plan.components
    assert tree[1]["attr"] == "inner" and [c["attr"] for c in tree[1]["children"]] == ["x", "axis"]


def test_pseudo_positioner_with_one_axis_sets_that_axis():
    plan = plan_device("pp", OneAxis(name="pp"))
    assert plan.kind == "pseudo" and [s.signal for s in plan.streams] == ["pp_p", "pp_r"]
    assert plan.set_default == "pp_p"


def test_plan_round_trips_through_a_channel_message():
    plan = plan_device("out", Outer(name="out"))
    assert DevicePlan.from_dict(plan.as_dict()) == plan


def test_huge_devices_are_truncated(monkeypatch):
    monkeypatch.setattr(device_plan, "MAX_STREAMS", 2)
    plan = plan_device("out", Outer(name="out"))
    assert plan.truncated and len(plan.streams) == 2


def test_topics_cannot_be_named_by_pv_requests():
    topic = device_topic("motor1", "motor1_user_readback")
    assert parse_device_topic(topic) == ("motor1", "motor1_user_readback")
    assert parse_device_topic("IOC:m1") is None and parse_device_topic("device x") is None
    assert " " in topic  # pv-socket names with whitespace are refused, so no PV request reaches it
    assert topic_label(topic) == "motor1 (motor1_user_readback)" and topic_label("IOC:m1") == "IOC:m1"
