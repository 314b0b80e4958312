"""Reading the bridge shards' heartbeats: what /readyz says about the bridge and the startup load."""

from __future__ import annotations

import json

from devices.bridge.heartbeat import heartbeat_key, heartbeat_value, shard_problems


def test_fresh_loaded_shards_have_no_problems():
    values = [heartbeat_value((0, 2), loaded=True), heartbeat_value((1, 2), loaded=True)]
    assert shard_problems(values, 2) == ([], [])
    beat = json.loads(values[1])
    assert beat["shard"] == [1, 2] and beat["loaded"] is True and beat["pid"] > 0


def test_an_expired_heartbeat_names_its_shard():
    bridge, loading = shard_problems([heartbeat_value((0, 2), loaded=True), None], 2)
    assert len(bridge) == 1 and bridge[0].startswith("shard 1/2: no heartbeat") and loading == []


def test_a_shard_still_loading_fails_only_the_startup_check():
    bridge, loading = shard_problems([heartbeat_value((0, 1), loaded=False).encode()], 1)
    assert bridge == [] and loading == ["shard 0/1: startup files still loading"]


def test_a_shard_counting_differently_or_garbage_is_a_bridge_problem():
    bridge, _ = shard_problems([heartbeat_value((0, 3), loaded=True), b"{not json"], 2)
    assert "OAS_BRIDGE_SHARDS=2" in bridge[0] and "unreadable" in bridge[1]


def test_keys_are_per_deployment_prefix_and_shard():
    assert heartbeat_key("bl7", 3) == "bl7:bridge-heartbeat:3"
