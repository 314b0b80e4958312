"""Two bridge shards (`runbridge --shard I/2`) and two servers sharing a real Redis.

Every PV and device lives on the shard its name hashes to (channel_layer/shards.py); a shard
that dies and comes back loses and regains only its own PVs, and the other shard's clients
lose no update meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import websockets

from devices.channel_layer.shards import device_shard, shard_of
from tests.support.c_ioc import COUNTERS
from tests.support.redis_check import redis_available
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

P = "TST:"
# The C IOC's 10 Hz counters (tests/support/c_ioc.py), one per shard: +1 per scan, so a client
# that lost an update would see a step of 2.
FAST = {shard: next(f"CIO:v{i}" for i in range(COUNTERS) if shard_of(f"CIO:v{i}", 2) == shard)
        for shard in (0, 1)}
STILL = [f"{P}{n}" for n in ("mode", "label", "ro", "slow", "refuse", "longtext", "m3:rbv", "m2:rbv")]
DEVICES = ("from ophyd import EpicsSignal\n"
           "m3 = EpicsSignal('TST:m3:sp', name='m3')\n"  # shard 1
           "m4 = EpicsSignal('TST:m1:sp', name='m4')\n")  # shard 0


def test_the_chosen_names_cover_both_shards():
    assert {n: shard_of(n, 2) for n in FAST.values()} == {FAST[0]: 0, FAST[1]: 1}  # both exist
    assert {shard_of(n, 2) for n in STILL} == {0, 1}
    assert (device_shard("m4", 2), device_shard("m3", 2)) == (0, 1)


def bridge(env: dict[str, str], shard: int) -> ServerProcess:
    proc = ServerProcess(env, command="runbridge")
    proc.start_args = ["--shard", f"{shard}/2"]
    return proc.start()


@pytest.fixture(scope="module")
def sharded(ioc, c_ioc, tmp_path_factory):
    if not redis_available():
        pytest.skip("no Redis on 127.0.0.1:6379")
    db = tmp_path_factory.mktemp("db") / "shards.sqlite3"
    startup = tmp_path_factory.mktemp("startup") / "devices.py"
    startup.write_text(DEVICES)
    env = {"OAS_STARTUP_DIR": str(startup),
           "REDIS_URL": "redis://127.0.0.1:6379/0", "OAS_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}",
           "OAS_BRIDGE": "external", "OAS_BRIDGE_SHARDS": "2", "DATABASE_URL": f"sqlite:///{db}",
           "OAS_RELEASE_GRACE_S": "1", "OAS_LEASE_S": "3", "OAS_ANONYMOUS_WRITES": "true",
           "OAS_SCALAR_RATE_HZ": "0"}  # nothing coalesced: every scan reaches every client
    bridges = {0: bridge(env, 0)}  # shard 0 migrates: first
    bridges[1] = bridge(env, 1)
    servers = [ServerProcess({**env, "OAS_LOAD_DEVICES_ON_START": "false"}).start() for _ in range(2)]
    yield bridges, servers, env
    for proc in [*servers, *bridges.values()]:
        proc.stop()


class Reader:
    """A pv-socket client that keeps every message it receives, with its arrival time."""

    def __init__(self, url: str, pvs: list[str]) -> None:
        self.url, self.pvs = url, pvs
        self.got: list[tuple[float, dict]] = []

    async def __aenter__(self) -> Reader:
        self.conn = await websockets.connect(self.url, max_size=None)
        await self.conn.send(json.dumps({"action": "subscribe", "pvs": self.pvs}))
        self.task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await self.conn.close()

    async def _read(self) -> None:
        async for text in self.conn:
            self.got.append((time.monotonic(), json.loads(text)))

    def values(self, pv: str, since: float = 0.0) -> list[dict]:
        return [m for t, m in self.got if t >= since and m.get("pv") == pv and "value" in m
                and m.get("sub_type") != "meta"]

    def disconnects(self, pv: str) -> list[dict]:
        return [m for _, m in self.got if m.get("pv") == pv and m.get("connected") is False]

    async def until(self, predicate, timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"{why}: {self.got[-5:]}"
            await asyncio.sleep(0.1)


async def test_every_pv_is_served_through_both_servers_from_exactly_one_shard(sharded, ioc, c_ioc):
    bridges, servers, _ = sharded
    pvs = [*FAST.values(), *STILL]
    iocs = (ioc, c_ioc)
    baseline = [await asyncio.to_thread(each.channel_counts) for each in iocs]
    readers = [Reader(f"{s.ws}/api/v1/pv-socket", pvs) for s in servers]
    async with readers[0], readers[1]:
        for reader in readers:
            await reader.until(lambda r=reader: all(r.values(pv) for pv in pvs), 20,
                               f"not every PV reached {reader.url}")
        counts = [await asyncio.to_thread(each.channel_counts) for each in iocs]
    extra = {pv: sum(now.get(pv, 0) - before.get(pv, 0) for now, before in zip(counts, baseline, strict=True))
             for pv in pvs}
    assert extra == dict.fromkeys(pvs, 1), (extra, bridges[0].output(), bridges[1].output())


async def test_device_sets_reach_the_owner_shard_from_either_server(sharded):
    _, servers, _ = sharded
    for i, (server, device, value) in enumerate([(servers[0], "m3", 3.25), (servers[1], "m4", 4.5),
                                                 (servers[1], "m3", 5.75), (servers[0], "m4", 6.5)]):
        async with websockets.connect(f"{server.ws}/api/v1/device-socket") as conn:
            await conn.send(json.dumps({"action": "subscribe", "device": device, "id": "sub"}))
            await conn.send(json.dumps({"action": "set", "device": device, "value": value, "id": i}))
            deadline = time.monotonic() + 20
            done = seen = False
            while not (done and seen):
                msg = json.loads(await asyncio.wait_for(conn.recv(), max(deadline - time.monotonic(), 0.01)))
                if msg.get("id") == i:
                    assert msg.get("status") == "done", msg
                    done = True
                seen = seen or (msg.get("device") == device and msg.get("value") == value)


async def test_a_killed_shard_loses_and_regains_only_its_own_pvs(sharded, c_ioc):
    bridges, servers, env = sharded
    kept, lost = FAST[0], FAST[1]
    readers = [Reader(f"{s.ws}/api/v1/pv-socket", [kept, lost]) for s in servers]
    async with readers[0], readers[1]:
        for reader in readers:
            await reader.until(lambda r=reader: r.values(kept) and r.values(lost), 20, "no first values")
        bridges[1].proc.kill()  # no goodbye
        bridges[1].proc.wait()
        killed = time.monotonic()
        await asyncio.sleep(5)
        for reader in readers:
            assert len(reader.values(kept, since=killed + 1)) >= 20, "shard 0's PV stopped"
            assert reader.values(lost, since=killed + 1) == [], "a dead shard's PV kept updating"
        bridges[1] = bridge(env, 1)
        restarted = time.monotonic()
        for reader in readers:  # leases are renewed every OAS_LEASE_S/3: the new shard learns them
            await reader.until(lambda r=reader: len(r.values(lost, since=restarted)) >= 2, 30,
                               "shard 1's PV did not come back")
        for reader in readers:
            assert reader.disconnects(kept) == [], "shard 0's clients noticed"
            assert len(reader.values(kept, since=restarted)) >= 5, "shard 0's PV stopped while shard 1 restarted"
            counts = [m["value"] for m in reader.values(kept)]
            steps = {round(b - a, 6) for a, b in zip(counts, counts[1:], strict=False)}
            assert steps == {1.0}, f"shard 0's clients lost or repeated updates: steps {steps}"
    deadline = time.monotonic() + 20
    while (await asyncio.to_thread(c_ioc.channel_counts)).get(lost, 0) > 1:  # the dead shard's channel closed
        assert time.monotonic() < deadline, "the killed shard's CA channel stayed open"
        await asyncio.sleep(0.5)
