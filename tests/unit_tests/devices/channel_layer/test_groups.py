import re

from channels.layers import InMemoryChannelLayer

from devices.channel_layer.groups import pv_group

VALID = re.compile(r"^[a-zA-Z0-9\-_.]+$")


def test_epics_names_become_valid_group_names():
    for name in ["IOC:m1", "XF:31IDA-OP{Tbl-Ax:X1}Mtr.RBV", "a b", "ü:π", "x" * 300, "BL:wave$"]:
        group = pv_group(name)
        assert VALID.match(group), group
        assert len(group) < 100


def test_distinct_names_give_distinct_groups():
    names = ["A:B", "A_3AB", "A.B", "A-B", "x" * 200, "x" * 201, "h.abc", "IOC:m1", "IOC:m1 "]
    groups = [pv_group(n) for n in names]
    assert len(set(groups)) == len(names)


async def test_in_memory_layer_accepts_the_group_names():
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    for name in ["IOC:m1", "XF:31IDA-OP{Tbl-Ax:X1}Mtr.RBV", "y" * 500]:
        await layer.group_add(pv_group(name), channel)
        await layer.group_send(pv_group(name), {"type": "pv.value", "pv": name})
        message = await layer.receive(channel)
        assert message["pv"] == name
