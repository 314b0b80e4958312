"""Status nodes on a real in-memory channel layer: every node answers, the asker merges,
a silent node is listed as missing, only the owner closes a socket; hubs and bridges attach
to their loop's node and detach when they stop."""

from __future__ import annotations

import pytest
from channels.layers import InMemoryChannelLayer

from devices.status.node import StatusNode, status_node
from devices.status.registry import CLOSE_BY_STAFF, OpenSocket, SocketRegistry
from devices.status.snapshot import Limits
from tests.support.sim import SimSource
from tests.support.stack import Stack


class FakeSession:
    """Only what a close touches: ``end``."""

    def __init__(self) -> None:
        self.ended = False

    async def end(self) -> None:
        self.ended = True


@pytest.fixture
async def nodes():
    layer = InMemoryChannelLayer(capacity=1000)
    made = [StatusNode(layer, process=name, sockets=SocketRegistry(), cameras=dict, upstream=lambda: 0)
            for name in ("s:1", "s:2")]
    for node in made:
        node.start()
        await node.joined.wait()
    yield made
    for node in made:
        await node.stop()


def add_socket(node: StatusNode, closed: list) -> OpenSocket:
    async def close(code: int, reason: str) -> None:
        closed.append((code, reason))

    sock = OpenSocket(id=node.sockets.new_id("pv-socket"), path="pv-socket", protocol="pv", user="bob",
                      client="10.1.1.1:1", session=FakeSession(), close=close)
    node.sockets.add(sock)
    return sock


async def test_every_node_answers_and_a_silent_one_is_missing(nodes):
    a, b = nodes
    add_socket(b, [])
    merged = await a.gather(Limits(), timeout=0.5)
    assert sorted(p["process"] for p in merged["processes"]) == ["s:1", "s:2"]
    assert [s["process"] for s in merged["sockets"]] == ["s:2"] and merged["missing"] == []
    assert merged["asked_by"] == "s:1" and merged["errors"] == []
    await b.stop()
    merged = await a.gather(Limits(), timeout=0.5)
    assert [p["process"] for p in merged["processes"]] == ["s:1"]
    assert [m["process"] for m in merged["missing"]] == ["s:2"]


async def test_an_external_bridge_that_does_not_answer_is_missing(nodes):
    merged = await nodes[0].gather(Limits(), timeout=0.3, bridge_shards=2)
    assert [m["process"] for m in merged["missing"]] == ["bridge shard 0/2", "bridge shard 1/2"]


async def test_only_the_owner_closes_a_socket(nodes):
    a, b = nodes
    closed: list = []
    sock = add_socket(b, closed)
    outcome = await a.close_socket(process="s:2", socket=sock.id, timeout=1.0)
    assert outcome is not None and outcome["found"] and outcome["closed"]
    assert outcome["socket"]["user"] == "bob" and outcome["socket"]["client"] == "10.1.1.1:1"
    assert closed == [(CLOSE_BY_STAFF, "closed by staff")] and sock.session.ended
    assert b.sockets.get(sock.id) is None
    again = await a.close_socket(process="s:2", socket=sock.id, timeout=1.0)
    assert again == {"found": False}
    assert await a.close_socket(process="s:9", socket=sock.id, timeout=0.3) is None  # nobody owns it


async def test_hub_and_bridge_attach_to_their_loop_node_and_detach():
    SimSource.registry.clear()
    async with Stack(SimSource) as stack:
        node = status_node(stack.layer)
        assert node is not None and node.hubs == [stack.hub] and node.bridges == [stack.bridge]
        await node.joined.wait()
        merged = await node.gather(Limits(), timeout=0.5)
        assert [p["role"] for p in merged["processes"]] == ["server+bridge"]  # one process: the same path
    assert status_node(stack.layer) is None  # the last one out stopped it
