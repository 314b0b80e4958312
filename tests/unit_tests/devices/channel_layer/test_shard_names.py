"""Which bridge shard owns a name (channel_layer/shards.py)."""

import os
import subprocess
import sys
import zlib
from collections import Counter

import pytest

from devices.channel_layer import messages as m
from devices.channel_layer import shards
from devices.channel_layer.topics import device_topic


def test_one_shard_keeps_the_channel_of_a_single_bridge():
    assert shards.bridge_channel(0, 1) == m.BRIDGE_CHANNEL == shards.SINGLE_CHANNEL
    assert shards.shard_of("anything", 1) == 0
    assert shards.bridge_channel(1, 2) == "ophydsite.bridge.1of2" != shards.bridge_channel(0, 2)


def test_assignment_is_crc32_of_the_name_and_independent_of_the_hash_seed():
    name = "XF:31IDA-OP{Tbl-Ax:X1}Mtr.RBV"
    assert shards.shard_of(name, 7) == zlib.crc32(name.encode()) % 7
    code = f"from devices.channel_layer.shards import shard_of; print(shard_of({name!r}, 7))"
    seen = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout.strip()
            for seed in ("1", "2", "3")}
    assert seen == {str(zlib.crc32(name.encode()) % 7)}


@pytest.mark.parametrize("count", [2, 3, 4])
def test_ten_thousand_pvs_spread_about_evenly(count):
    per = Counter(shards.shard_of(f"BENCH:pv{i}", count) for i in range(10000))
    assert set(per) == set(range(count))
    assert max(per.values()) < 1.1 * 10000 / count


def test_device_topics_follow_their_device():
    owner = shards.shard_of("motor1", 4)
    topics = [device_topic("motor1", s) for s in ("motor1", "motor1_user_setpoint", "motor1_velocity")]
    assert {shards.shard_of(t, 4) for t in topics} == {owner} == {shards.device_shard("motor1", 4)}
    assert shards.owner_key(topics[1]) == "motor1" and shards.owner_key("PV:a") == "PV:a"


def test_split_keeps_order_within_a_shard():
    names = [f"P:{i}" for i in range(50)]
    parts = shards.split(names, 3)
    assert sorted(n for part in parts.values() for n in part) == sorted(names)
    for shard, part in parts.items():
        assert part == [n for n in names if shards.shard_of(n, 3) == shard]


@pytest.mark.parametrize("text", ["2/2", "-1/2", "0/0", "1", "a/b", "0/2/3", ""])
def test_bad_shard_arguments_are_refused(text):
    with pytest.raises(ValueError):
        shards.parse_shard(text)


def test_shard_argument():
    assert shards.parse_shard("1/2") == (1, 2) and shards.parse_shard("0/1") == (0, 1)
