"""The ``options`` action and batched delivery on the pv-socket and device-socket sessions,
over the real bridge, hub and in-memory layer (simulated PVs, soft ophyd signals)."""

import asyncio
import json

import pytest
from ophyd import Signal

from devices.sockets.device_session import DeviceSession
from devices.sockets.pv_session import PvSession
from devices.startup.loader import FileResult, LoadResult
from tests.support.sim import SimSource, opened_source
from tests.support.stack import Client, Stack


class RawClient(Client):
    """Keeps every frame as the socket would carry it (text), besides the decoded inbox."""

    def __init__(self, *args, **kwargs):
        self.frames = []
        self.times = []
        super().__init__(*args, **kwargs)

    async def _send(self, text):
        self.frames.append(text)
        self.times.append(asyncio.get_running_loop().time())
        self.inbox.put_nowait(json.loads(text))

    def batches(self):
        return [json.loads(f) for f in self.frames if f.startswith("[")]

    def messages(self):
        """Every message, arrays opened, in the order the client reads them."""
        out = []
        for frame in self.frames:
            decoded = json.loads(frame)
            out += decoded if isinstance(decoded, list) else [decoded]
        return out


@pytest.fixture
async def stack():
    SimSource.registry.clear()
    async with Stack(SimSource, scalar_rate_hz=0, release_grace_s=0.2, connect_timeout_s=0.3) as s:
        yield s


async def source_of(name):
    return await opened_source(name, timeout=2.0)


async def until(predicate, timeout=3.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def values(messages, pv):
    return [m["value"] for m in messages if m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"]


async def test_options_then_updates_arrive_as_arrays_latest_per_pv(stack):
    client = RawClient(PvSession, stack)
    await client.send({"action": "options", "batch_ms": 200, "id": 1})
    assert await client.next(where=lambda m: isinstance(m, dict) and m.get("id") == 1) == {
        "action": "options", "batch_ms": 200, "id": 1}
    await client.send({"action": "subscribe", "pvs": ["B:a", "B:b"], "id": 2})
    sources = [await source_of("B:a"), await source_of("B:b")]
    for source in sources:
        source.connect()
    for i in range(20):  # faster than the window: each window's array holds only the newest
        for source in sources:
            source.emit(float(i), timestamp=1.0 + i)
        await asyncio.sleep(0.01)
    await until(lambda: all(values(client.messages(), pv)[-1:] == [19.0] for pv in ("B:a", "B:b")))
    assert json.loads(client.frames[0]) == {"action": "options", "batch_ms": 200, "id": 1}
    assert json.loads(client.frames[1])["id"] == 2  # the summary: a reply, never inside an array
    data = [f for f in client.frames if "value" in f]
    assert data and all(f.startswith("[") for f in data)
    for batch in client.batches():
        keys = [(m["pv"], m.get("sub_type", "value")) for m in batch]
        assert len(keys) == len(set(keys))  # latest per PV and kind
        assert all("id" not in m and "action" not in m for m in batch)
    assert len(values(client.messages(), "B:a")) < 20  # intermediate values were skipped
    await client.session.end()


async def test_without_options_frames_are_single_objects_as_in_ophyd_websocket(stack):
    client = RawClient(PvSession, stack)
    await client.send({"action": "subscribe", "pv": "S:one"})
    source = await source_of("S:one")
    source.connect()
    source.emit(1.5)
    await client.next(where=lambda m: m.get("pv") == "S:one" and m.get("value") == 1.5)
    assert client.frames and all(f.startswith("{") for f in client.frames)
    await client.session.end()


async def test_replies_go_out_at_once_while_data_waits_for_the_window(stack):
    client = RawClient(PvSession, stack)
    await client.send({"action": "options", "batch_ms": 1000})
    await client.send({"action": "subscribe", "pv": "S:w"})
    source = await source_of("S:w")
    source.connect()
    source.emit(1.0)
    await until(lambda: values(client.messages(), "S:w") == [1.0])
    first_batch = client.times[-1]
    source.emit(2.0)  # held: a batch went out moments ago
    await asyncio.sleep(0.05)
    asked = asyncio.get_running_loop().time()
    await client.send({"action": "refresh", "id": "r"})
    await until(lambda: any(m.get("id") == "r" for m in client.messages()))
    await until(lambda: values(client.messages(), "S:w")[-1:] == [2.0])
    reply = next(i for i, f in enumerate(client.frames) if '"id":"r"' in f)
    held = next(i for i, f in enumerate(client.frames) if '"value":2.0' in f)
    if asked < first_batch + 0.9:  # (a machine too busy to ask within the window proves nothing)
        assert reply < held  # the reply overtook the data waiting for the window
    assert client.times[held] - first_batch >= 1.0
    await client.session.end()


async def test_options_errors_and_the_question_without_batch_ms(stack):
    client = RawClient(PvSession, stack)
    for rid, bad in enumerate([True, -5, 1001, "20"]):
        await client.send({"action": "options", "batch_ms": bad, "id": rid})
        error = await client.next(where=lambda m, rid=rid: m.get("id") == rid)
        assert (error["code"], error["action"]) == ("bad_field", "options")
    await client.send({"action": "options", "batch_ms": 20, "speed": "max", "id": "x"})
    error = await client.next(where=lambda m: m.get("id") == "x")
    assert error["code"] == "bad_field" and "'speed'" in error["error"]
    await client.send({"action": "options", "id": "q"})
    assert await client.next(where=lambda m: m.get("id") == "q") == {"action": "options", "batch_ms": 0, "id": "q"}
    await client.send({"action": "options", "batch_ms": 20})
    await client.send({"action": "options", "batch_ms": 0})  # off again: single objects once more
    await client.send({"action": "subscribe", "pv": "S:off"})
    source = await source_of("S:off")
    source.connect()
    source.emit(3.0)
    await until(lambda: values(client.messages(), "S:off") == [3.0])
    assert not client.batches()
    await client.session.end()


async def test_the_device_socket_batches_its_messages_too(stack):
    sig = Signal(name="sig", value=1.0)
    result = LoadResult(objects={"sig": sig}, files=[FileResult("t.py", "t.py", True, ["sig"])], duration_s=0.0)
    stack.bridge.registry.apply(result)
    await stack.bridge.devices_reloaded()
    client = RawClient(DeviceSession, stack)
    await client.send({"action": "options", "batch_ms": 50, "id": 1})
    await client.send({"action": "subscribe", "device": "sig", "id": 2})
    await until(lambda: any(m.get("device") == "sig" and m.get("value") == 1.0 for m in client.messages()))
    sig.put(2.0)
    await until(lambda: any(m.get("device") == "sig" and m.get("value") == 2.0 for m in client.messages()))
    assert [json.loads(f)["id"] for f in client.frames[:2]] == [1, 2]
    assert all(f.startswith("[") for f in client.frames[2:])
    assert all(m["device"] == "sig" and m["signal"] == "sig" for batch in client.batches() for m in batch)
    await client.session.end()
