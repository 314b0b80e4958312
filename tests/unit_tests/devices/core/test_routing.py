"""Routing hub commands to bridge shards (core/routing.py) and two shards over one layer."""

import asyncio
from dataclasses import replace

import pytest
from channels.layers import InMemoryChannelLayer

from devices.bridge.server import Bridge
from devices.channel_layer import messages as m
from devices.channel_layer.shards import shard_of
from devices.core.hub import Hub
from devices.core.routing import CHUNK, Routes, merge_describe, merge_reload
from devices.sockets.pv_session import PvSession
from ophydsite.settings.oas import OasSettings
from tests.support.sim import SimSource
from tests.support.stack import Client


def test_one_shard_sends_everything_to_the_single_channel():
    routes = Routes(1)
    assert routes.channels == [m.BRIDGE_CHANNEL] and routes.console == m.BRIDGE_CHANNEL
    names = [f"P:{i}" for i in range(1200)]
    assert [(c, len(chunk)) for c, chunk in routes.interest(names)] == [(m.BRIDGE_CHANNEL, 500)] * 2 + [
        (m.BRIDGE_CHANNEL, 200)]
    assert routes.owner("P:1") == m.BRIDGE_CHANNEL


def test_names_are_split_per_owner_in_chunks():
    routes = Routes(2)
    names = [f"P:{i}" for i in range(2000)]
    sent = routes.interest(names)
    assert all(len(chunk) <= CHUNK for _, chunk in sent)
    for channel, chunk in sent:
        assert {routes.owner(n) for n in chunk} == {channel}
    assert sorted(n for _, chunk in sent for n in chunk) == sorted(names)
    assert routes.console == routes.channels[0] == "ophydsite.bridge.0of2"


def test_devices_are_grouped_by_owner():
    routes = Routes(3)
    parts = routes.devices(["m1", "m2", "m3", "stage"])
    for channel, devices in parts.items():
        assert {routes.owner(f"device {d} {d}") for d in devices} == {channel}


def test_describe_replies_merge():
    merged = merge_describe([{"devices": {"a": {"x": 1}}, "known": ["b", "a"]},
                             {"devices": {"c": None}, "known": ["a", "c"]}])
    assert merged == {"devices": {"a": {"x": 1}, "c": None}, "known": ["a", "b", "c"]}
    failed = merge_describe([{"devices": {}, "known": []}, {"status": "error", "error": "boom", "devices": {}}])
    assert failed["status"] == "error" and failed["error"] == "boom"


def test_reload_reports_merge():
    routes = Routes(2)
    a, b = routes.channels
    ok = {"status": "ok", "devices": ["m1"], "errors": {}, "removed": []}
    assert merge_reload({a: ok, b: dict(ok)}, routes) == ok
    worse = merge_reload({a: ok, b: {**ok, "status": "partial", "errors": {"f.py": "Traceback"}}}, routes)
    assert worse["status"] == "partial" and worse["errors"] == {"f.py": "Traceback"}
    missing = merge_reload({a: ok, b: None}, routes)
    assert missing["status"] == "partial" and "bridge shard 1/2" in missing["errors"]
    assert merge_reload({a: None, b: None}, routes) is None


def test_more_than_one_shard_needs_an_external_bridge():
    assert OasSettings.from_env({}).bridge_shards == 1
    assert OasSettings.from_env({"OAS_BRIDGE_SHARDS": "2", "REDIS_URL": "redis://x"}).bridge_shards == 2
    with pytest.raises(ValueError, match="OAS_BRIDGE_SHARDS"):
        OasSettings.from_env({"OAS_BRIDGE_SHARDS": "2"})
    with pytest.raises(ValueError, match="OAS_BRIDGE_SHARDS"):
        OasSettings.from_env({"OAS_BRIDGE_SHARDS": "0"})


@pytest.fixture
async def two_shards():
    """Two bridge shards and a hub routing to them, over one in-memory layer."""
    SimSource.registry.clear()
    settings = replace(OasSettings(), load_devices_on_start=False, device_state_period_s=3600.0,
                       connect_timeout_s=0.3, bridge="external", bridge_shards=2)
    layer = InMemoryChannelLayer(capacity=10000)
    bridges = [Bridge(layer=layer, command_layer=layer, settings=settings, source_factory=SimSource,
                      shard=(i, 2)) for i in range(2)]
    tasks = [asyncio.create_task(b.run()) for b in bridges]
    for b in bridges:
        await b.started.wait()
    hub = Hub(layer=layer, command_layer=layer, lease_s=settings.lease_s, shards=2)
    await hub.start()

    class Stack:
        pass

    stack = Stack()
    stack.hub, stack.settings, stack.bridges, stack.layer, stack.tasks = hub, settings, bridges, layer, tasks
    yield stack
    await hub.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _until(predicate, timeout=3.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_each_pv_opens_on_its_owner_only_and_values_reach_the_client(two_shards):
    names = [f"S:{i}" for i in range(40)]
    assert {shard_of(n, 2) for n in names} == {0, 1}
    client = Client(PvSession, two_shards)
    await client.send({"action": "subscribe", "pvs": names})
    await _until(lambda: all(n in SimSource.registry and SimSource.registry[n].opened for n in names))
    for i, bridge in enumerate(two_shards.bridges):
        assert set(bridge.entries) == {n for n in names if shard_of(n, 2) == i}
    for name in names:
        SimSource.registry[name].connect()
        SimSource.registry[name].emit(1.5)
    got = set()
    while got != set(names):
        msg = await client.next(where=lambda m: "value" in m and m.get("sub_type") != "meta")
        got.add(msg["pv"])


async def test_a_set_goes_to_the_owner_and_a_stray_name_is_refused(two_shards):
    name = next(f"S:set{i}" for i in range(100) if shard_of(f"S:set{i}", 2) == 1)
    outcome = await two_shards.hub.set(name, 2.0, 2.0)
    assert outcome["status"] != "error", outcome
    assert name in two_shards.bridges[1].entries and name not in two_shards.bridges[0].entries
    # A server that thinks there is one bridge sends to the other's channel: shard 0 refuses.
    await two_shards.layer.send(two_shards.bridges[0].channel, {"type": m.SUBSCRIBE, "hub": "h", "pvs": [name]})
    await asyncio.sleep(0.1)
    assert name not in two_shards.bridges[0].entries
    wrong = Hub(layer=two_shards.layer, command_layer=two_shards.layer, lease_s=30.0, shards=1)
    wrong.routes.channels[0] = two_shards.bridges[0].channel  # everything to shard 0
    await wrong.start()
    try:
        outcome = await wrong.set(name, 3.0, 2.0)
    finally:
        await wrong.stop()
    assert outcome["status"] == "error" and "another bridge shard" in outcome["message"]


async def test_a_reload_reaches_every_shard_and_the_console_only_shard_0(two_shards, monkeypatch):
    reloaded = []
    for bridge in two_shards.bridges:
        monkeypatch.setattr(bridge, "_start_reload", lambda hub, request, b=bridge: (reloaded.append(b.shard),
                            b.publisher.to_channel((hub, "reply", request), hub, {
                                "type": m.REPLY, "request": request,
                                "outcome": {"status": "ok", "devices": [], "errors": {}}})))
    watched = []
    monkeypatch.setattr(two_shards.bridges[0].console, "handle", watched.append)
    monkeypatch.setattr(two_shards.bridges[1].console, "handle", lambda msg: pytest.fail("shard 1 read the console"))
    outcome = await two_shards.hub.reload_devices(3.0)
    assert outcome["status"] == "ok" and sorted(reloaded) == [0, 1]
    await two_shards.hub._console_watch()
    await _until(lambda: watched)


async def test_a_describe_is_split_by_device_and_a_silent_shard_named(two_shards):
    devices = [f"dev{i}" for i in range(10)]
    reply = await two_shards.hub.describe(devices, timeout=3.0)
    # A shard drops devices it does not own, so every key here came from its owner.
    assert reply == {"devices": dict.fromkeys(devices), "known": []}
    assert (await two_shards.hub.describe([], timeout=3.0))["known"] == []
    two_shards.tasks[1].cancel()  # shard 1 dies
    await asyncio.gather(two_shards.tasks[1], return_exceptions=True)
    silent = await two_shards.hub.describe(devices, timeout=0.5)
    assert silent["status"] == "bridge_unavailable" and "bridge shard 1/2" in silent["error"]
    assert "status" not in await two_shards.hub.describe([], timeout=3.0)  # shard 0 still lists them
