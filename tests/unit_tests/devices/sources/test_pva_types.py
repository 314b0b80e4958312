"""Normative types mapped to the bridge's events (devices/sources/pva_types.py), on p4p Values
built in this process: no server."""

from __future__ import annotations

import numpy as np
import pytest
from p4p import Type, Value
from p4p.nt import NTEnum, NTScalar

from devices.sources.pva_types import (
    UNSUPPORTED,
    assign_put,
    channel_info,
    metadata_fields,
    property_event,
    unsupported_reason,
    value_event,
)
from devices.sources.source import PropertyEvent, ValueEvent


def double_with_limits(value: float = 1.5) -> Value:
    v = NTScalar("d", display=True, control=True, form=True).wrap(value, timestamp=1700000000.25)
    v["display"] = {"limitLow": -10.0, "limitHigh": 10.0, "units": "mm", "precision": 3}
    v["control"] = {"limitLow": -5.0, "limitHigh": 5.0}
    v["alarm"] = {"severity": 1, "status": 3}
    return v


def enum(index: int = 1) -> Value:
    return NTEnum().wrap({"index": index, "choices": ["Off", "On", "Fault"]}, timestamp=1700000001.5)


def test_ntscalar_double_value_timestamp_and_alarm():
    event = value_event(double_with_limits())
    assert event == ValueEvent(1.5, pytest.approx(1700000000.25), 1, 3)
    assert type(event.value) is float


def test_ntscalar_double_metadata():
    info = channel_info(double_with_limits())
    assert (info.kind, info.count, info.units, info.precision) == ("float", 1, "mm", 3)
    assert (info.lower_ctrl_limit, info.upper_ctrl_limit) == (-5.0, 5.0)
    assert info.enum_strs is None and info.access == (True, True) and not info.metadata_pending
    assert info.extra["type_id"].startswith("epics:nt/NTScalar:")
    assert property_event(double_with_limits()) == PropertyEvent("mm", 3, -5.0, 5.0, None)


def test_display_limits_stand_in_for_unset_control_limits():
    v = double_with_limits()
    v["control"] = {"limitLow": 0.0, "limitHigh": 0.0}
    assert property_event(v).lower_ctrl_limit == -10.0 and property_event(v).upper_ctrl_limit == 10.0


def test_no_limits_at_all_are_none():
    info = channel_info(NTScalar("d").wrap(2.0))
    assert (info.lower_ctrl_limit, info.upper_ctrl_limit, info.units, info.precision) == (None, None, None, None)


def test_precision_from_the_legacy_display_format():
    v = NTScalar("d", display=True).wrap(2.0)
    v["display.format"] = "%8.4f"
    assert channel_info(v).precision == 4
    v["display.format"] = ""
    assert channel_info(v).precision is None


@pytest.mark.parametrize(("code", "value", "kind"), [
    ("i", 42, "int"), ("l", -7, "int"), ("B", 200, "int"), ("H", 65535, "int"),
    ("f", 0.5, "float"), ("s", "hello", "string"), ("?", True, "int"),
])
def test_scalar_kinds(code, value, kind):
    v = NTScalar(code).wrap(value)
    assert channel_info(v).kind == kind
    got = value_event(v).value
    assert got == value and type(got) is type(int(value) if code == "?" else value)


def test_ntscalararray_of_doubles_is_a_numpy_array():
    v = NTScalar("ad").wrap([1.0, 2.0, 3.0], timestamp=5.0)
    info = channel_info(v)
    assert (info.kind, info.count) == ("float", 3)
    event = value_event(v)
    assert isinstance(event.value, np.ndarray) and event.value.tolist() == [1.0, 2.0, 3.0]
    assert event.timestamp == 5.0


def test_ntscalararray_of_strings_is_a_list():
    v = NTScalar("as").wrap(["a", "b"])
    assert (channel_info(v).kind, channel_info(v).count) == ("string", 2)
    assert value_event(v).value == ["a", "b"]


def test_ntenum_index_and_choices():
    info = channel_info(enum())
    assert (info.kind, info.count, info.enum_strs) == ("enum", 1, ("Off", "On", "Fault"))
    event = value_event(enum(2), enum=True)
    assert event.value == 2 and event.timestamp == pytest.approx(1700000001.5)
    assert property_event(enum()).enum_strs == ("Off", "On", "Fault")


def test_missing_timestamp_and_alarm_are_none():
    bare = Value(Type([("value", "d")], id="epics:nt/NTScalar:1.0"), {"value": 3.0})
    assert value_event(bare) == ValueEvent(3.0, None, None, None)
    assert channel_info(bare).kind == "float"


def test_a_structure_that_is_no_normative_type_is_unsupported():
    custom = Value(Type([("a", "i"), ("b", "s")], id="my:custom/1.0"), {"a": 1})
    info = channel_info(custom)
    assert (info.kind, info.count) == (UNSUPPORTED, 0)
    assert "my:custom/1.0" in info.extra["error"] and info.extra["type_id"] == "my:custom/1.0"
    assert unsupported_reason(custom) == info.extra["error"]
    assert unsupported_reason(double_with_limits()) is None


def test_an_ntscalar_without_a_scalar_value_is_unsupported():
    odd = Value(Type([("value", ("S", None, [("x", "i")]))], id="epics:nt/NTScalar:1.0"), {})
    assert channel_info(odd).kind == UNSUPPORTED


def test_metadata_fields_name_what_a_property_change_shows_in():
    assert metadata_fields(double_with_limits()) == ("display", "control")
    assert metadata_fields(NTScalar("i").wrap(1)) == ()
    assert metadata_fields(enum()) == ("value.choices",)


def test_put_into_an_enum_by_index_or_choice():
    target = enum(0)
    assign_put(target, "Fault", ["Off", "On", "Fault"])
    assert target["value.index"] == 2
    assign_put(target, 1, ["Off", "On", "Fault"])
    assert target["value.index"] == 1
    with pytest.raises(ValueError, match="not one of the choices"):
        assign_put(target, "Broken", ["Off", "On", "Fault"])
    with pytest.raises(ValueError):
        assign_put(target, 1.5, ["Off", "On", "Fault"])


def test_put_into_scalars_and_arrays():
    target = double_with_limits()
    assign_put(target, 2.5)
    assert target["value"] == 2.5
    array = NTScalar("ad").wrap([1.0])
    assign_put(array, [4.0, 5.0])
    assert array["value"].tolist() == [4.0, 5.0]
    with pytest.raises(ValueError, match="does not fit"):
        assign_put(target, "not a number")


def test_put_into_an_unsupported_structure_is_refused():
    custom = Value(Type([("a", "i")], id="my:custom/1.0"), {"a": 1})
    with pytest.raises(ValueError, match="not a normative type"):
        assign_put(custom, 3)
