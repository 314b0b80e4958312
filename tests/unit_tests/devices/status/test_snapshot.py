"""One process's snapshot, from a real hub, bridge and pv-socket sessions (in-memory layer,
simulated source): sockets, PVs held, the bridge's leases; lists capped; rates from counters."""

from __future__ import annotations

import json
import time

import pytest

from devices.sockets.pv_session import PvSession
from devices.status.registry import OpenSocket, SocketRegistry
from devices.status.snapshot import Limits, Rates, process_snapshot
from tests.support.sim import SimSource, opened_source
from tests.support.stack import Client, Stack


@pytest.fixture
async def stack():
    SimSource.registry.clear()
    async with Stack(SimSource, scalar_rate_hz=0.0, release_grace_s=0.2, connect_timeout_s=0.3) as s:
        yield s


def is_value(pv):
    return lambda m: m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"


async def _close(code: int, reason: str) -> None:
    return None


def registered(registry: SocketRegistry, client: Client, user: str = "alice (token gui)") -> OpenSocket:
    sock = OpenSocket(id=registry.new_id("pv-socket"), path="pv-socket", protocol="pv", user=user,
                      client="10.0.0.7:40000", session=client.session, close=_close)
    registry.add(sock)
    return sock


def snapshot(stack: Stack, registry: SocketRegistry, rates: Rates, limits: Limits | None = None, now: float = 0.0,
             cameras: dict | None = None) -> dict:
    return process_snapshot(process="host:1", started=1.0, sockets=registry.all(), hubs=[stack.hub],
                            bridges=[stack.bridge], cameras=cameras or {}, upstream=0, rates=rates,
                            limits=limits or Limits(), now=now)


async def test_sockets_pvs_and_leases_of_one_process(stack):
    registry, rates = SocketRegistry(), Rates()
    a, b = Client(PvSession, stack), Client(PvSession, stack)
    sock_a, sock_b = registered(registry, a), registered(registry, b, "anonymous")
    await a.send({"action": "subscribe", "pvs": ["M:a", "M:b"]})
    await b.send({"action": "subscribe", "pvs": ["M:a"]})
    source = await opened_source("M:a")
    source.connect()
    for i in range(3):
        source.emit(float(i), timestamp=time.time())
        await a.next(where=is_value("M:a"))
        await b.next(where=is_value("M:a"))

    first = snapshot(stack, registry, rates, now=100.0)
    json.dumps(first)  # plain data only
    assert first["process"] == "host:1" and first["role"] == "server+bridge"
    by_id = {s["id"]: s for s in first["sockets"]}
    assert by_id[sock_a.id]["subscriptions"] == 2 and by_id[sock_a.id]["targets"] == ["M:a", "M:b"]
    assert by_id[sock_a.id]["user"] == "alice (token gui)" and by_id[sock_a.id]["client"] == "10.0.0.7:40000"
    assert by_id[sock_a.id]["messages_sent"] == a.session.mailbox.sent >= 4  # the summary and 3 values
    assert by_id[sock_b.id]["subscriptions"] == 1 and by_id[sock_b.id]["protocol"] == "pv"
    pvs = {p["name"]: p for p in first["pvs"]}
    assert first["pvs_count"] == 2
    assert pvs["M:a"]["clients"] == 2 and pvs["M:b"]["clients"] == 1 and first["pvs"][0]["name"] == "M:a"
    assert pvs["M:a"]["connected"] and pvs["M:a"]["protocol"] == "ca" and pvs["M:a"]["last_update"] > 0
    assert pvs["M:a"]["updates"] >= 3 and pvs["M:a"]["updates_per_s"] is None  # a rate needs two snapshots
    bridge = first["bridges"][0]
    assert bridge["channels"] == 2 and bridge["leases_total"] == 2 and bridge["shard"] == 0
    leases = {lease["pv"]: lease for lease in bridge["leases"]}
    assert list(leases["M:a"]["hubs"]) == [stack.hub.channel] and first["hub_channels"] == [stack.hub.channel]
    assert first["console"] is not None and first["console"]["connected"] is False

    updates = pvs["M:a"]["updates"]
    for i in range(4):
        source.emit(10.0 + i, timestamp=time.time())
        await a.next(where=is_value("M:a"))
    second = snapshot(stack, registry, rates, now=102.0)
    rate = {p["name"]: p for p in second["pvs"]}["M:a"]["updates_per_s"]
    assert rate == pytest.approx((updates + 4 - updates) / 2.0, abs=0.6)

    await a.session.end()
    await b.session.end()


async def test_long_lists_are_capped_and_counted(stack):
    registry = SocketRegistry()
    client = Client(PvSession, stack)
    registered(registry, client)
    names = [f"M:n{i:03d}" for i in range(120)]
    await client.send({"action": "subscribe", "pvs": names})
    await client.next(where=lambda m: m.get("action") == "subscribe")
    snap = snapshot(stack, registry, Rates(), Limits(max_names=10, max_pvs=25))
    sock = snap["sockets"][0]
    assert sock["subscriptions"] == 120 and sock["targets"] == names[:10] and sock["targets_truncated"]
    assert snap["pvs_count"] == 120 and len(snap["pvs"]) == 25
    assert snap["bridges"][0]["leases_total"] == 120 and len(snap["bridges"][0]["leases"]) == 25
    assert snap["bridges"][0]["leases_truncated"]
    await client.session.end()


async def test_camera_rates_come_from_the_feed_counters(stack):
    rates = Rates()
    stats = {"sim": {"viewers": 2, "frames_in": 10, "encoded": {"log=True,max=512,q=80": 8}, "skipped": 1,
                     "errors": 0}}
    first = snapshot(stack, SocketRegistry(), rates, now=10.0, cameras=stats)["cameras"][0]
    assert first["viewers"] == 2 and first["encoded"] == 8 and first["fps"] is None
    stats["sim"]["frames_in"], stats["sim"]["encoded"] = 30, {"log=True,max=512,q=80": 28}
    second = snapshot(stack, SocketRegistry(), rates, now=12.0, cameras=stats)["cameras"][0]
    assert second["fps"] == 10.0 and second["encodes_per_s"] == 10.0


def test_rates_need_a_window_and_forget_keys():
    rates = Rates()
    assert rates.rate("k", 5, 0.0) is None
    assert rates.rate("k", 6, 0.1) is None  # too short a window: the previous rate (none yet)
    assert rates.rate("k", 25, 2.0) == 10.0
    assert rates.rate("k", 26, 2.1) == 10.0  # kept until the window is long enough again
    assert rates.rate("k", 3, 3.0) is None  # the counter restarted (a PV released and held again)
    rates.keep_only([])
    assert rates.rate("k", 50, 4.0) is None
