"""pycaserver's /monitor protocol against the real IOC."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

P = "TST:"


def monitor(pv):
    return lambda m: m.get("msg_type") == "monitor" and m.get("pvname") == pv


def connection(pv):
    return lambda m: m.get("msg_type") == "connection" and m.get("pvname") == pv


async def test_connect_gives_connection_then_monitor(ioc, ws):
    client = await ws("/monitor")
    await client.send({"action": "connect", "pv": f"{P}m1:sp"})
    conn = await client.next(connection(f"{P}m1:sp"))
    assert conn == {"msg_type": "connection", "pvname": f"{P}m1:sp", "conn": True}
    mon = await client.next(monitor(f"{P}m1:sp"))
    assert mon["count"] == 1 and mon["units"] and isinstance(mon["timestamp"], float)
    assert isinstance(mon["value"], float)


async def test_bare_string_is_a_pv_name_and_waveforms_are_arrays(ioc, ws):
    client = await ws("/monitor")
    await client.send(f"{P}wave")
    mon = await client.next(monitor(f"{P}wave"))
    assert isinstance(mon["value"], list) and mon["count"] == len(mon["value"]) == 100


async def test_disconnect_stops_updates_and_unknown_disconnect_is_ignored(ioc, ws):
    client = await ws("/monitor")
    await client.send({"action": "connect", "pv": f"{P}sine"})
    await client.next(monitor(f"{P}sine"))
    await client.send({"action": "disconnect", "pv": f"{P}sine"})
    await client.send({"action": "disconnect", "pv": f"{P}never:connected"})
    await asyncio.sleep(0.2)
    await client.drain(0.2)
    assert await client.drain(0.5) == []


async def test_ioc_side_disconnect_gives_conn_false(ioc, ws):
    client = await ws("/monitor")
    await client.send({"action": "connect", "pv": f"{P}flaky"})
    await client.next(lambda m: connection(f"{P}flaky")(m) and m["conn"])
    await asyncio.to_thread(ioc.caput, "flaky:online", 0)
    await client.next(lambda m: connection(f"{P}flaky")(m) and not m["conn"], timeout=5)
    await asyncio.to_thread(ioc.caput, "flaky:online", 1)
    await client.next(lambda m: connection(f"{P}flaky")(m) and m["conn"], timeout=20)


async def test_bad_input_on_monitor(ioc, ws):
    client = await ws("/monitor")
    await client.send({"action": "jump", "pv": "A"})
    err = await client.next()
    assert err["msg_type"] == "error" and err["code"] == "unknown_action"
    await client.send({"action": "connect"})
    assert (await client.next())["code"] == "bad_field"
    await client.send("has space")
    assert (await client.next())["code"] == "bad_name"
    await client.send({"action": "connect", "pv": "xyz://A", "id": 5})
    refused = await client.next()
    assert (refused["code"], refused["id"]) == ("bad_name", 5) and "unknown protocol 'xyz'" in refused["error"]
    await client.send({"action": "connect", "pv": f"{P}label"})
    assert (await client.next(monitor(f"{P}label")))["value"] == "hello"


async def test_monitor_and_pv_socket_share_one_channel(ioc, ws):
    mon, pv = await ws("/monitor"), await ws()
    await mon.send({"action": "connect", "pv": f"{P}m3:rbv"})
    await pv.send({"action": "subscribe", "pv": f"{P}m3:rbv"})
    await mon.next(monitor(f"{P}m3:rbv"))
    await pv.next(lambda m: m.get("pv") == f"{P}m3:rbv" and "value" in m)
    counts = await asyncio.to_thread(ioc.channel_counts)
    assert counts.get(f"{P}m3:rbv") == 1


async def test_a_ca_scheme_spelling_shares_the_channel_and_keeps_its_name(ioc, ws):
    plain, spelled = await ws("/monitor"), await ws("/monitor")
    await plain.send({"action": "connect", "pv": f"{P}m2:rbv"})
    await spelled.send({"action": "connect", "pv": f"ca://{P}m2:rbv"})
    await plain.next(monitor(f"{P}m2:rbv"))
    assert (await spelled.next(connection(f"ca://{P}m2:rbv")))["conn"] is True
    await spelled.next(monitor(f"ca://{P}m2:rbv"))
    counts = await asyncio.to_thread(ioc.channel_counts)
    assert counts.get(f"{P}m2:rbv") == 1
