"""/metrics of a real server process against the caproto IOC: values follow clients as they
connect, subscribe, set, stall and leave; only allowed networks may read it; no label names a
PV, a user or an address."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.support.redis_check import redis_available
from tests.support.server import ServerProcess, free_tcp_port
from tests.support.wsclient import read_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

P = "TST:"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def server(ioc, tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "metrics.sqlite3"
    proc = ServerProcess({"DATABASE_URL": f"sqlite:///{db}", "OAS_ANONYMOUS_WRITES": "true",
                          "OAS_CLIENT_STALL_TIMEOUT_S": "1", "OAS_CLIENT_CLOSE_WAIT_S": "1"})
    proc.start()
    yield proc
    proc.stop()


def scrape_text(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"{server.http}/metrics", timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


async def scrape(server: ServerProcess) -> Samples:
    text = await asyncio.to_thread(scrape_text, server)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(server: ServerProcess, check: Callable[[Samples], bool], timeout: float = 15.0) -> Samples:
    """Scrape until ``check`` holds (the values are read live, so they follow in a moment)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        samples = await scrape(server)
        if check(samples):
            return samples
        assert loop.time() < deadline, "metrics did not reach the expected values"
        await asyncio.sleep(0.2)


async def test_metrics_follow_clients_that_connect_subscribe_stall_and_leave(server):
    before = await scrape(server)
    assert value(before, "ophydsite_dependency_up", dependency="database") == 1
    assert value(before, "ophydsite_dependency_up", dependency="bridge") == 1
    assert ("ophydsite_dependency_up", (("dependency", "redis"),)) not in before  # no REDIS_URL
    assert value(before, "process_resident_memory_bytes") > 0  # the usual process metrics
    opened = value(before, "ophydsite_socket_connections_total", protocol="pv")
    sent = value(before, "ophydsite_client_messages_sent_total", protocol="pv")
    sent_bytes = value(before, "ophydsite_client_bytes_sent_total", protocol="pv")
    upstream = value(before, "ophydsite_upstream_updates_total", protocol="ca")
    done = value(before, "ophydsite_set_outcomes_total", result="done")
    latencies = value(before, "ophydsite_update_latency_seconds_count")

    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        now = await until(server, lambda s: value(s, "ophydsite_open_sockets", protocol="pv") == 1)
        assert value(now, "ophydsite_socket_connections_total", protocol="pv") == opened + 1

        # subscribe: subscriptions, channels, upstream updates, messages and bytes, latency
        await conn.send(json.dumps({"action": "subscribe", "pvs": [f"{P}sine", f"{P}m2:sp"], "id": 1}))
        await read_until(conn, lambda m: m.get("id") == 1)
        await read_until(conn, lambda m: m.get("pv") == f"{P}sine" and "value" in m and m.get("connected"))
        now = await until(server, lambda s: value(s, "ophydsite_channels", protocol="ca", state="connected") >= 2
                          and value(s, "ophydsite_upstream_updates_total", protocol="ca") > upstream + 3
                          and value(s, "ophydsite_update_latency_seconds_count") > latencies)
        assert value(now, "ophydsite_client_subscriptions", protocol="pv") == 2
        assert value(now, "ophydsite_client_subscriptions_max", protocol="pv") == 2
        assert value(now, "ophydsite_subscriptions_unique") == 2
        assert value(now, "ophydsite_bridge_leases") == 2
        assert value(now, "ophydsite_client_messages_sent_total", protocol="pv") > sent + 2
        assert value(now, "ophydsite_client_bytes_sent_total", protocol="pv") > sent_bytes + 100
        assert value(now, "ophydsite_update_latency_seconds_bucket", le="+Inf") == value(
            now, "ophydsite_update_latency_seconds_count")

        # a set that completes
        await conn.send(json.dumps({"action": "set", "pv": f"{P}m2:sp", "value": 0.5, "id": 2}))
        reply = await read_until(conn, lambda m: m.get("id") == 2)
        assert reply["status"] == "done"
        now = await scrape(server)
        assert value(now, "ophydsite_set_outcomes_total", result="done") == done + 1

        # a second client that stops reading: its mailbox replaces updates, then it is closed
        stalled = value(now, "ophydsite_clients_stalled_total", protocol="pv")
        replaced = value(now, "ophydsite_mailbox_replaced_total", protocol="pv")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        stuck = await websockets.connect(f"{server.ws}/api/v1/pv-socket", sock=sock, max_queue=1, max_size=None,
                                         ping_interval=None)
        await stuck.send(json.dumps({"action": "subscribe", "pvs": [f"{P}bigwave", f"{P}sine"]}))
        await until(server, lambda s: value(s, "ophydsite_open_sockets", protocol="pv") == 2
                    and value(s, "ophydsite_client_subscriptions", protocol="pv") == 4
                    and value(s, "ophydsite_client_subscriptions_max", protocol="pv") == 2
                    and value(s, "ophydsite_subscriptions_unique") == 3)
        now = await until(server, lambda s: value(s, "ophydsite_clients_stalled_total", protocol="pv") == stalled + 1,
                          timeout=30)
        assert value(now, "ophydsite_mailbox_replaced_total", protocol="pv") > replaced
        now = await until(server, lambda s: value(s, "ophydsite_open_sockets", protocol="pv") == 1)
        assert value(now, "ophydsite_subscriptions_unique") == 2  # bigwave went with the stuck client
        cut = sum(v for (name, labels), v in now.items() if name == "ophydsite_socket_disconnects_total"
                  and ("protocol", "pv") in labels and dict(labels)["code_class"] in ("abnormal", "try_again_later"))
        assert cut >= 1, {k: v for k, v in now.items() if k[0] == "ophydsite_socket_disconnects_total"}
        stuck.transport.abort()

    # the first client leaves with a normal close
    now = await until(server, lambda s: value(s, "ophydsite_open_sockets", protocol="pv") == 0)
    assert value(now, "ophydsite_socket_disconnects_total", protocol="pv", code_class="normal") >= 1
    assert value(now, "ophydsite_client_subscriptions", protocol="pv") == 0
    assert value(now, "ophydsite_subscriptions_unique") == 0
    # what the closed sockets sent stays counted
    assert value(now, "ophydsite_client_messages_sent_total", protocol="pv") > sent + 2
    assert_labels_bounded(now)


def assert_labels_bounded(samples: Samples) -> None:
    """Every label of ours has a value from a small fixed set: never a PV, user or address."""
    allowed = {
        "protocol": {"pv", "device", "monitor", "camera", "console", "other", "ca", "pva"},
        "code_class": {"normal", "going_away", "abnormal", "try_again_later", "application", "error", "other",
                       "none"},
        "result": {"done", "refused", "interlocked", "timeout", "error"},
        "state": {"connected", "disconnected", "connecting"},
        "stage": {"received", "encoded", "sent"},
        "dependency": {"database", "redis", "bridge", "queue_server"},
        "alias": {"default"},
    }
    for (name, labels), _ in samples.items():
        if not name.startswith("ophydsite_") or name.startswith("ophydsite_http_"):
            continue
        for key, label in labels:
            assert "TST" not in label and "127.0.0.1" not in label, (name, labels)
            if key != "le":
                assert label in allowed[key], (name, key, label)


async def test_metrics_are_refused_outside_the_allowed_networks(ioc, tmp_path, server):
    assert "ophydsite_open_sockets" in await asyncio.to_thread(scrape_text, server)  # loopback: allowed
    proc = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/refused.sqlite3",
                          "OAS_METRICS_ALLOW": "10.99.0.0/16,fd00::/8"}).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, f"{proc.http}/metrics", timeout=10)
        assert refused.value.code == 403
        body = json.loads(refused.value.read())
        assert body["code"] == "forbidden" and "OAS_METRICS_ALLOW" in body["error"]
    finally:
        proc.stop()


async def test_scaled_mode_the_bridge_serves_its_own_port_and_servers_see_redis(ioc, tmp_path):
    """runbridge with OAS_BRIDGE_METRICS_PORT: channels and upstream updates on the bridge's
    port, sockets on the server's, Redis and the bridge up on the server's."""
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1:6379 is required when CI is set")
        pytest.skip("no Redis on 127.0.0.1:6379")
    port = free_tcp_port()
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0", "OAS_REDIS_PREFIX": f"m{uuid.uuid4().hex[:8]}",
           "OAS_BRIDGE": "external", "DATABASE_URL": f"sqlite:///{tmp_path}/scaled.sqlite3",
           "OAS_ANONYMOUS_WRITES": "true"}
    bridge = ServerProcess({**env, "OAS_BRIDGE_METRICS_PORT": str(port)}, command="runbridge").start()
    server = ServerProcess({**env, "OAS_LOAD_DEVICES_ON_START": "false"})
    try:
        server.start()
        bridge_metrics = ServerProcess({}, port=port)  # only its URLs are used: the bridge's port
        async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
            await conn.send(json.dumps({"action": "subscribe", "pv": f"{P}sine"}))
            await read_until(conn, lambda m: m.get("pv") == f"{P}sine" and "value" in m and m.get("connected"))
            at_bridge = await until(bridge_metrics, lambda s: value(
                s, "ophydsite_channels", protocol="ca", state="connected") == 1
                and value(s, "ophydsite_upstream_updates_total", protocol="ca") > 0)
            assert value(at_bridge, "ophydsite_bridge_leases") == 1
            assert value(at_bridge, "ophydsite_dependency_up", dependency="redis") == 1
            assert value(at_bridge, "ophydsite_dependency_up", dependency="database") == 1
            at_server = await scrape(server)
            assert value(at_server, "ophydsite_open_sockets", protocol="pv") == 1
            assert value(at_server, "ophydsite_subscriptions_unique") == 1
            assert value(at_server, "ophydsite_update_latency_seconds_count") > 0
            assert value(at_server, "ophydsite_dependency_up", dependency="redis") == 1
            assert value(at_server, "ophydsite_dependency_up", dependency="bridge") == 1
            assert ("ophydsite_channels", (("protocol", "ca"), ("state", "connected"))) not in at_server
            assert_labels_bounded(at_bridge)
        bridge.stop()  # SIGTERM: a clean stop removes its heartbeat (else it would expire after its TTL)
        assert bridge.proc is not None and bridge.proc.returncode == 0, bridge.output()
        import redis

        client = redis.Redis.from_url(env["REDIS_URL"])
        try:
            assert client.exists(f"{env['OAS_REDIS_PREFIX']}:bridge-heartbeat:0") == 0
        finally:
            client.close()
        gone = await until(server, lambda s: value(s, "ophydsite_dependency_up", dependency="bridge") == 0)
        assert value(gone, "ophydsite_dependency_up", dependency="redis") == 1
    finally:
        server.stop()
        bridge.stop()
