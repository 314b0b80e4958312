"""pv-socket protocol against the real caproto IOC, through the ASGI app and embedded bridge."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.wsclient import meta_of, reply, value_of

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

P = "TST:"


async def test_subscribe_single_sends_summary_meta_and_value(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pv": f"{P}m1:sp"})
    summary = await client.next()
    assert summary == {"action": "subscribe", "subscribed": [f"{P}m1:sp"], "already_subscribed": [],
                       "failed": []}
    meta = await client.next(meta_of(f"{P}m1:sp"))
    assert meta["connected"] is True and meta["obj"] == f"{P}m1:sp"
    assert meta["units"] and meta["precision"] == 3
    assert meta["lower_ctrl_limit"] < meta["upper_ctrl_limit"]
    for key in ("read_access", "write_access", "timestamp", "status", "severity", "enum_strs",
                "setpoint_timestamp", "setpoint_status", "setpoint_severity", "setpoint_precision"):
        assert key in meta
    value = await client.next(value_of(f"{P}m1:sp"))
    assert set(value) >= {"pv", "value", "timestamp", "connected", "read_access", "write_access"}
    assert value["connected"] is True and isinstance(value["value"], float)


async def test_first_value_is_not_sent_disconnected_then_connected(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pv": f"{P}label"})
    messages = await client.drain(1.0)
    values = [m for m in messages if value_of(f"{P}label")(m)]
    assert values and all(m["connected"] for m in values)


async def test_multi_subscribe_reports_already_subscribed(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pv": f"{P}label"})
    await client.next()
    await client.send({"action": "subscribe", "pvs": [f"{P}mode", f"{P}label"], "id": "s2"})
    summary = await client.next(reply("s2"))
    assert summary["subscribed"] == [f"{P}mode"] and summary["already_subscribed"] == [f"{P}label"]


async def test_types(ioc, ws):
    client = await ws()
    names = [f"{P}{s}" for s in ("counter", "mode", "label", "longtext", "wave", "iwave", "sine")]
    await client.send({"action": "subscribe", "pvs": names})
    values = {}
    metas = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8
    while (len(values) < len(names) or len(metas) < len(names)) and loop.time() < deadline:
        msg = await client.next()
        if msg.get("sub_type") == "meta":
            metas[msg["pv"]] = msg
        elif "value" in msg:
            values[msg["pv"]] = msg["value"]
    assert isinstance(values[f"{P}counter"], int)
    assert isinstance(values[f"{P}mode"], int)
    assert metas[f"{P}mode"]["enum_strs"] == ["Off", "On", "Fault"]
    assert values[f"{P}label"] == "hello"
    assert isinstance(values[f"{P}longtext"], str) and values[f"{P}longtext"]
    assert isinstance(values[f"{P}wave"], list) and len(values[f"{P}wave"]) == 100
    assert all(isinstance(v, int) for v in values[f"{P}iwave"])
    assert isinstance(values[f"{P}sine"], float)


async def test_subscribe_safely(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribeSafely", "pvs": [f"{P}ro", f"{P}does:not:exist"], "id": 9})
    summary = await client.next(reply(9), timeout=8)
    assert summary["subscribed"] == [f"{P}ro"]
    assert summary["failed"][0]["pv"] == f"{P}does:not:exist"
    assert "did not connect" in summary["failed"][0]["error"]
    value = await client.next(value_of(f"{P}ro"))
    assert value["value"] == 42 and value["write_access"] is False
    later = await client.drain(0.5)
    assert not [m for m in later if m.get("pv") == f"{P}does:not:exist"]


async def test_subscribe_read_only(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribeReadOnly", "pv": f"{P}m2:sp"})
    assert (await client.next())["subscribed"] == [f"{P}m2:sp"]
    meta = await client.next(meta_of(f"{P}m2:sp"))
    value = await client.next(value_of(f"{P}m2:sp"))
    assert meta["write_access"] is False and value["write_access"] is False
    await client.send({"action": "set", "pv": f"{P}m2:sp", "value": 1, "id": "ro"})
    refused = await client.next(reply("ro"))
    assert refused["code"] == "read_only" and "subscribeReadOnly" in refused["error"]


async def test_unsubscribe_single_and_multi(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pvs": [f"{P}sine", f"{P}counter", f"{P}mode"]})
    await client.next(value_of(f"{P}sine"))
    await client.send({"action": "unsubscribe", "pv": f"{P}sine"})
    assert await client.next(lambda m: m.get("action") == "unsubscribe") == {
        "action": "unsubscribe", "unsubscribed": [f"{P}sine"], "not_subscribed": []}
    await client.send({"action": "unsubscribe", "pvs": [f"{P}counter", f"{P}nothere"]})
    summary = await client.next(lambda m: m.get("action") == "unsubscribe")
    assert summary["unsubscribed"] == [f"{P}counter"] and summary["not_subscribed"] == [f"{P}nothere"]
    later = await client.drain(0.6)
    assert not [m for m in later if m.get("pv") in (f"{P}sine", f"{P}counter")]


async def test_set_moves_setpoint_and_readback_follows(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pvs": [f"{P}m1:sp", f"{P}m1:rbv"]})
    now, _ = await client.expect_all(value_of(f"{P}m1:sp"), value_of(f"{P}m1:rbv"))
    target = 1.5 if now["value"] != 1.5 else 2.25  # a change, whatever an earlier test left there
    await client.send({"action": "set", "pv": f"{P}m1:sp", "value": target, "timeout": 3, "id": "mv"})
    done, _, _ = await client.expect_all(
        reply("mv"),
        lambda m: value_of(f"{P}m1:sp")(m) and m["value"] == target,
        lambda m: value_of(f"{P}m1:rbv")(m) and abs(m["value"] - target) < 1e-6,
        timeout=15)
    assert done["status"] == "done" and done["target"] == f"{P}m1:sp" and done["written"] == target


async def test_set_outcomes_from_the_ioc(ioc, ws):
    client = await ws()
    await client.send({"action": "set", "pv": f"{P}m1:sp", "value": 1e6, "id": 1})
    out = await client.next(reply(1))
    assert out["code"] == "out_of_limits" and "limits" in out["error"]
    await client.send({"action": "set", "pv": f"{P}refuse", "value": 1, "id": 2})
    assert (await client.next(reply(2)))["code"] == "ioc_refused"
    await client.send({"action": "set", "pv": f"{P}slow", "value": 1, "timeout": 0.5, "id": 3})
    assert (await client.next(reply(3)))["code"] == "timeout"
    await client.send({"action": "set", "pv": f"{P}ro", "value": 1, "id": 4})
    assert (await client.next(reply(4)))["code"] == "read_only"
    await client.send({"action": "set", "pv": f"{P}no:such:pv", "value": 1, "timeout": 0.5, "id": 5})
    assert (await client.next(reply(5)))["code"] == "not_connected"
    await client.send({"action": "set", "pv": f"{P}mode", "value": "Maybe", "id": 6})
    assert (await client.next(reply(6)))["code"] == "bad_value"
    await client.send({"action": "set", "pv": f"{P}mode", "value": "On", "id": 7})
    assert (await client.next(reply(7)))["status"] == "done"


async def test_clamped_write_completes_and_later_sets_still_work(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pv": f"{P}clamp"})
    await client.send({"action": "set", "pv": f"{P}clamp", "value": 8, "id": "c1"})
    done, _ = await client.expect_all(reply("c1"), lambda m: value_of(f"{P}clamp")(m) and m["value"] == 5)
    assert done["status"] == "done"
    await client.send({"action": "set", "pv": f"{P}clamp", "value": 2, "id": "c2"})
    done, _ = await client.expect_all(reply("c2"), lambda m: value_of(f"{P}clamp")(m) and m["value"] == 2)
    assert done["status"] == "done"


async def test_slow_set_does_not_block_other_streams(ioc, ws):
    writer, watcher = await ws(), await ws()
    await watcher.send({"action": "subscribe", "pv": f"{P}sine"})
    await watcher.next(value_of(f"{P}sine"))
    await writer.send({"action": "set", "pv": f"{P}slow", "value": 3, "timeout": 5, "id": "slow"})
    got = await watcher.drain(1.0)
    assert len([m for m in got if value_of(f"{P}sine")(m)]) >= 5  # 10 Hz keeps flowing
    await writer.send({"action": "subscribe", "pv": f"{P}label", "id": "meanwhile"})
    assert (await writer.next(reply("meanwhile"), timeout=1))["subscribed"] == [f"{P}label"]
    assert (await writer.next(reply("slow"), timeout=5))["status"] == "done"


async def test_refresh_resends_current_values(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pvs": [f"{P}label", f"{P}ro"]})
    await client.next(value_of(f"{P}ro"))
    await client.drain(0.3)
    await client.send({"action": "refresh", "id": "r"})
    ack = await client.next(reply("r"))
    assert ack["message"].startswith("Refreshed")
    got = await client.drain(0.5)
    assert {m["pv"] for m in got if "value" in m} == {f"{P}label", f"{P}ro"}


async def test_alarm_change_arrives_as_metadata(ioc, ws):
    client = await ws()
    await client.send({"action": "set", "pv": f"{P}temp", "value": 20, "id": "t0"})
    await client.next(reply("t0"))
    await client.send({"action": "subscribe", "pv": f"{P}temp"})
    await client.next(value_of(f"{P}temp"))
    await client.send({"action": "set", "pv": f"{P}temp", "value": 60, "id": "t1"})
    meta, value = await client.expect_all(
        lambda m: meta_of(f"{P}temp")(m) and m["severity"] == 2,
        lambda m: value_of(f"{P}temp")(m) and m["value"] == 60)
    assert meta["connected"] is True and value["severity"] == 2
    await client.send({"action": "set", "pv": f"{P}temp", "value": 20, "id": "t2"})
    await client.next(lambda m: meta_of(f"{P}temp")(m) and m["severity"] == 0)


async def test_one_ca_channel_per_pv_and_release_after_grace(ioc, ws):
    name = f"{P}m2:moving"  # opened by no other test in this process
    clients = [await ws() for _ in range(3)]
    for client in clients:
        await client.send({"action": "subscribe", "pv": name})
    for client in clients:
        await client.next(value_of(name))
    counts = await asyncio.to_thread(ioc.channel_counts)
    assert counts.get(name) == 1
    for client in clients:
        await client.close()
    await asyncio.sleep(3.0)  # grace (1 s in tests) plus housekeeping
    counts = await asyncio.to_thread(ioc.channel_counts)
    assert counts.get(name, 0) == 0


async def test_ioc_death_and_return_reach_subscribers(restartable_ioc, ws):
    name = "RST:sine"
    clients = [await ws() for _ in range(2)]
    for client in clients:
        await client.send({"action": "subscribe", "pv": name})
        await client.next(lambda m: value_of(name)(m) and m["connected"])
    await asyncio.to_thread(restartable_ioc.stop)
    for client in clients:
        down = await client.next(lambda m: value_of(name)(m) and not m["connected"], timeout=5)
        assert down["connected"] is False
    await asyncio.to_thread(restartable_ioc.start)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for client in clients:
        await client.expect_all(lambda m: meta_of(name)(m) and m["connected"],
                                lambda m: value_of(name)(m) and m["connected"], timeout=20)
    # the bridge re-creates lost channels, so it does not wait for libca's 10 s re-search
    assert loop.time() - started < 6.0


async def test_flaky_pv_disconnects_and_returns(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pv": f"{P}flaky"})
    await client.next(lambda m: value_of(f"{P}flaky")(m) and m["connected"])
    await asyncio.to_thread(ioc.caput, "flaky:online", 0)
    await client.next(lambda m: value_of(f"{P}flaky")(m) and not m["connected"], timeout=5)
    await asyncio.to_thread(ioc.caput, "flaky:online", 1)
    await client.next(lambda m: value_of(f"{P}flaky")(m) and m["connected"], timeout=20)


async def test_limit_change_at_the_ioc_sends_new_metadata_and_is_enforced(ioc, ws):
    client = await ws()
    name = f"{P}m3:sp"
    await client.send({"action": "subscribe", "pv": name})
    first = await client.next(meta_of(name))
    assert first["upper_ctrl_limit"] == 1000
    try:
        await asyncio.to_thread(ioc.caput, "m3:hlm", 500)
        changed = await client.next(lambda m: meta_of(name)(m) and m["upper_ctrl_limit"] == 500)
        assert changed["units"] == first["units"] and changed["connected"] is True
        await client.send({"action": "set", "pv": name, "value": 700, "id": "lim"})
        assert (await client.next(reply("lim")))["code"] == "out_of_limits"
    finally:
        await asyncio.to_thread(ioc.caput, "m3:hlm", 1000)
    await client.next(lambda m: meta_of(name)(m) and m["upper_ctrl_limit"] == 1000)
