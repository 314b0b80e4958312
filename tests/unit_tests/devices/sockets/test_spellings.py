"""PV names with a protocol on the pv-socket: every spelling of one PV shares one channel, and
each client reads the PV back under the name it used (simulated sources stand behind both
protocols here; tests/system_tests/test_pva_socket.py has the real PV Access server)."""

import pytest

from devices.sockets.pv_session import PvSession
from tests.support.sim import SimSource, opened_source
from tests.support.stack import Client, Stack


@pytest.fixture(params=["ca", "pva"])
async def stack(request):
    SimSource.registry.clear()
    async with Stack(SimSource, scalar_rate_hz=0, release_grace_s=0.2, connect_timeout_s=0.3,
                     default_protocol=request.param) as s:
        yield s


async def opened(name):
    return await opened_source(name, timeout=3.0)


def value_named(name, value):
    return lambda m: m.get("pv") == name and m.get("value") == value and m.get("sub_type") != "meta"


async def test_each_client_reads_a_shared_pv_under_its_own_spelling(stack):
    default = stack.settings.default_protocol
    topic = "S:x" if default == "ca" else "pva://S:x"
    spellings = ["S:x", f"{default}://S:x"]
    clients = [Client(PvSession, stack) for _ in spellings]
    for client, spelling in zip(clients, spellings, strict=True):
        await client.send({"action": "subscribe", "pv": spelling, "id": 1})
        summary = await client.next(where=lambda m: m.get("id") == 1)
        assert summary["subscribed"] == [spelling]
    source = await opened(topic)
    assert sorted(SimSource.registry) == [topic]  # one channel for both spellings
    source.connect()
    source.emit(2.5)
    for client, spelling in zip(clients, spellings, strict=True):
        _, meta = await client.expect_all(value_named(spelling, 2.5), lambda m: m.get("sub_type") == "meta")
        assert meta["pv"] == meta["obj"] == spelling
    await clients[1].send({"action": "subscribe", "pvs": spellings, "id": 2})  # the same PV twice
    again = await clients[1].next(where=lambda m: m.get("id") == 2)
    assert (again["subscribed"], again["already_subscribed"]) == ([], [spellings[1]])
    await clients[1].send({"action": "set", "pv": spellings[1], "value": 7, "id": 3})
    done = await clients[1].next(where=lambda m: m.get("id") == 3)
    assert (done["status"], done["target"]) == ("done", spellings[1])
    await clients[1].send({"action": "unsubscribe", "pv": "S:x", "id": 4})
    gone = await clients[1].next(where=lambda m: m.get("id") == 4)
    assert gone["unsubscribed"] == [spellings[1]]
    for client in clients:
        await client.session.end()


async def test_the_other_protocol_is_another_pv_and_bad_schemes_are_refused(stack):
    client = Client(PvSession, stack)
    await client.send({"action": "subscribe", "pvs": ["ca://S:y", "pva://S:y", "http://S:y", "pva://"], "id": 1})
    summary = await client.next(where=lambda m: m.get("id") == 1)
    assert summary["subscribed"] == ["ca://S:y", "pva://S:y"]
    assert [(f["pv"], f["error"][:24]) for f in summary["failed"]] == [
        ("http://S:y", "unknown protocol 'http' "), ("pva://", "no PV name after pva://")]
    await opened("S:y")
    await opened("pva://S:y")
    await client.send({"action": "set", "pv": "tango://S:y", "value": 1, "id": 2})
    error = await client.next(where=lambda m: m.get("id") == 2)
    assert error["code"] == "bad_name" and "unknown protocol 'tango'" in error["error"]
    await client.send({"action": "subscribe", "pv": "S:z", "id": 3})  # the socket still works
    assert (await client.next(where=lambda m: m.get("id") == 3))["subscribed"] == ["S:z"]
    await client.session.end()
