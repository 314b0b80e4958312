import pytest

from devices.sources.putcheck import PutRejected, coerce_for_put
from devices.sources.source import ChannelInfo

FLOAT = ChannelInfo(kind="float", count=1, lower_ctrl_limit=-10.0, upper_ctrl_limit=10.0)


def rejected(info, value):
    with pytest.raises(PutRejected) as exc:
        coerce_for_put("X", info, value)
    return exc.value.code


def test_limits():
    assert coerce_for_put("X", FLOAT, 5) == 5
    assert coerce_for_put("X", FLOAT, "2.5") == 2.5
    assert rejected(FLOAT, 50) == "out_of_limits"
    assert rejected(FLOAT, -10.5) == "out_of_limits"
    no_limits = ChannelInfo(kind="float", count=1, lower_ctrl_limit=0.0, upper_ctrl_limit=0.0)
    assert coerce_for_put("X", no_limits, 1e6) == 1e6


def test_types():
    assert rejected(FLOAT, "abc") == "bad_value"
    assert rejected(FLOAT, [1]) == "bad_value"
    assert rejected(FLOAT, float("nan")) == "bad_value"
    integer = ChannelInfo(kind="int", count=1)
    assert coerce_for_put("X", integer, 3.0) == 3
    assert rejected(integer, 2.5) == "bad_value"
    enum = ChannelInfo(kind="enum", count=1, enum_strs=("Off", "On"))
    assert coerce_for_put("X", enum, "On") == 1
    assert coerce_for_put("X", enum, 0) == 0
    assert rejected(enum, 2) == "bad_value"
    assert rejected(enum, "Maybe") == "bad_value"
    text = ChannelInfo(kind="string", count=1)
    assert coerce_for_put("X", text, "hello") == "hello"
    assert rejected(text, "x" * 40) == "bad_value"
    char = ChannelInfo(kind="char", count=8)
    assert coerce_for_put("X", char, "abc") == "abc"
    assert rejected(char, "abcdefgh") == "bad_value"
    wave = ChannelInfo(kind="float", count=3)
    assert coerce_for_put("X", wave, [1, 2]) == [1, 2]
    assert rejected(wave, [1, 2, 3, 4]) == "bad_value"
    assert rejected(wave, 1) == "bad_value"
