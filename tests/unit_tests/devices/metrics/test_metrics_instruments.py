"""The metrics read from a real bridge, hub and pv-socket sessions (in-memory layer, simulated
source): values follow clients as they open, subscribe, set, stall and close."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from devices.metrics import instruments as metrics
from devices.sockets.pv_session import PvSession
from tests.support.sim import SimSource, opened_source
from tests.support.stack import Client, Stack


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def stack():
    SimSource.registry.clear()
    async with Stack(SimSource, scalar_rate_hz=0.0, release_grace_s=0.2, connect_timeout_s=0.3,
                     client_stall_timeout_s=0.3) as s:
        yield s


def is_value(pv):
    return lambda m: m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"


async def test_values_follow_a_client_that_opens_subscribes_and_closes(stack):
    opened, upstream = sample("ophydsite_socket_connections_total", protocol="pv"), sample(
        "ophydsite_upstream_updates_total", protocol="ca")
    open_before = sample("ophydsite_open_sockets", protocol="pv")
    unique, latencies = sample("ophydsite_subscriptions_unique"), sample("ophydsite_update_latency_seconds_count")
    fast = sample("ophydsite_update_latency_seconds_bucket", le="0.25")
    sent = sample("ophydsite_client_messages_sent_total", protocol="pv")
    client = Client(PvSession, stack)
    metrics.socket_opened(client.session, "pv-socket")  # what the consumer does when it accepts
    assert sample("ophydsite_open_sockets", protocol="pv") == open_before + 1
    assert sample("ophydsite_socket_connections_total", protocol="pv") == opened + 1

    await client.send({"action": "subscribe", "pvs": ["M:a", "M:b"]})
    source = await opened_source("M:a")
    assert sample("ophydsite_channels", protocol="ca", state="connecting") >= 1
    source.connect()
    for i in range(5):
        source.emit(float(i), timestamp=time.time())
        await client.next(where=is_value("M:a"))
    # process-wide: a session bridge of earlier system tests may count updates of its own meanwhile
    assert sample("ophydsite_upstream_updates_total", protocol="ca") >= upstream + 5
    assert sample("ophydsite_update_latency_seconds_count") >= latencies + 5
    assert sample("ophydsite_update_latency_seconds_bucket", le="0.25") >= fast + 5  # all in-process: fast
    assert sample("ophydsite_channels", protocol="ca", state="connected") >= 1
    assert sample("ophydsite_subscriptions_unique") >= unique + 2
    assert sample("ophydsite_client_subscriptions_max", protocol="pv") >= 2
    assert sample("ophydsite_client_messages_sent_total", protocol="pv") >= sent + 6  # summary and 5 values
    assert sample("ophydsite_client_bytes_sent_total", protocol="pv") > 0

    source.disconnect()
    await client.next(where=lambda m: is_value("M:a")(m) and m["connected"] is False)
    assert sample("ophydsite_channels", protocol="ca", state="disconnected") >= 1

    disconnects = sample("ophydsite_socket_disconnects_total", protocol="pv", code_class="normal")
    await client.session.end()
    metrics.socket_closed(client.session, 1000)
    assert sample("ophydsite_open_sockets", protocol="pv") == open_before
    assert sample("ophydsite_subscriptions_unique") <= unique
    assert sample("ophydsite_socket_disconnects_total", protocol="pv", code_class="normal") == disconnects + 1
    assert sample("ophydsite_client_messages_sent_total", protocol="pv") >= sent + 6  # kept after the close


async def test_a_stalled_client_replaces_updates_and_is_counted(stack):
    stalled, replaced = sample("ophydsite_clients_stalled_total", protocol="pv"), sample(
        "ophydsite_mailbox_replaced_total", protocol="pv")
    gate = asyncio.Event()

    async def never(text: str) -> None:
        await gate.wait()  # a socket that accepts nothing

    client = Client(PvSession, stack, send=never)
    metrics.socket_opened(client.session, "pv-socket")
    await client.send({"action": "subscribe", "pv": "M:s"})
    source = await opened_source("M:s")
    source.connect()
    for i in range(20):
        source.emit(float(i), timestamp=time.time())
        await asyncio.sleep(0.005)
    for _ in range(100):
        if client.closed_with is not None:
            break
        await asyncio.sleep(0.02)
    assert client.closed_with == 1013
    assert sample("ophydsite_clients_stalled_total", protocol="pv") == stalled + 1
    assert sample("ophydsite_mailbox_replaced_total", protocol="pv") > replaced
    metrics.socket_closed(client.session, 1006)
    assert sample("ophydsite_mailbox_replaced_total", protocol="pv") > replaced  # kept after the close


async def test_set_outcomes_are_counted_once_by_result(stack):
    def counts():
        return {r: sample("ophydsite_set_outcomes_total", result=r) for r in ("done", "refused", "timeout", "error")}

    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "M:set"})
    source = await opened_source("M:set")
    source.connect()
    source.emit(0.0)
    start = counts()
    await client.send({"action": "set", "pv": "M:set", "value": 5, "id": 1})
    assert (await client.next(where=lambda m: m.get("id") == 1))["status"] == "done"
    await client.send({"action": "set", "pv": "M:set", "value": 50, "id": 2})  # past the limits
    assert (await client.next(where=lambda m: m.get("id") == 2))["code"] == "out_of_limits"
    source.put_result = None  # the IOC never completes
    await client.send({"action": "set", "pv": "M:set", "value": 1, "timeout": 0.2, "id": 3})
    assert (await client.next(where=lambda m: m.get("id") == 3))["code"] == "timeout"
    await client.send({"action": "set", "pv": "M:never", "value": 1, "timeout": 0.2, "id": 4})
    assert (await client.next(where=lambda m: m.get("id") == 4))["code"] == "not_connected"
    await client.send({"action": "subscribeReadOnly", "pv": "M:ro"})
    await client.send({"action": "set", "pv": "M:ro", "value": 1, "id": 5})
    assert (await client.next(where=lambda m: m.get("id") == 5))["code"] == "read_only"
    end = counts()
    assert {r: end[r] - start[r] for r in end} == {"done": 1, "refused": 2, "timeout": 1, "error": 1}
    await client.session.end()


def test_close_codes_and_set_statuses_map_to_few_labels():
    assert [metrics.close_code_class(c) for c in (1000, 1001, 1005, 1006, 1013, 4401, 1011, 3000, None)] == [
        "normal", "going_away", "abnormal", "abnormal", "try_again_later", "application", "error", "other", "none"]
    assert [metrics.set_result(s) for s in ("done", "interlocked", "timeout", "forbidden", "ioc_refused",
                                            "bridge_unavailable", "whatever")] == [
        "done", "interlocked", "timeout", "refused", "refused", "error", "error"]
    assert metrics.payload_size("abc") == 3 and metrics.payload_size(("ab", b"xyz")) == 5
    assert [metrics.protocol_of(t) for t in ("X:a", "pva://X:a", "device motor1 motor1_user_readback")] == [
        "ca", "pva", "device"]


def test_latency_tally_leaves_out_stale_values_and_clamps_clock_skew():
    tally = metrics.LatencyTally(buckets=(0.01, 1.0))
    now = time.time()
    tally.observe_update({"timestamp": now - 0.5})
    tally.observe_update({"timestamp": now + 3})  # the IOC's clock runs ahead: counted as 0
    tally.observe_update({"timestamp": now - 3600})  # a value held for an hour: not a delay
    tally.observe_update({"meta": {}})
    family = tally.family()
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.01": 1, "1.0": 2, "+Inf": 2}
    assert 0.5 <= next(s.value for s in family.samples if s.name.endswith("_sum")) < 0.7
