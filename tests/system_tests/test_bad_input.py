"""Every kind of bad input gets a clear error on the same socket, which keeps working."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from tests.support.wsclient import TEST_OAS, value_of

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

P = "TST:"

CASES = [
    ("not json", "bad_json"),
    ("[1, 2, 3]", "not_object"),
    ('"TST:sine"', "not_object"),
    ('{"action": "fly"}', "unknown_action"),
    ('{"pv": "TST:sine"}', "missing_field"),
    ('{"action": 12}', "bad_field"),
    ('{"action": "subscribe"}', "missing_field"),
    ('{"action": "subscribe", "pv": 5}', "bad_field"),
    ('{"action": "subscribe", "pvs": "TST:sine"}', "bad_field"),
    ('{"action": "set", "pv": "TST:m1:sp"}', "missing_field"),
    ('{"action": "set", "pv": "TST:m1:sp", "value": 1, "timeout": "soon"}', "bad_field"),
    ('{"action": "set", "pv": "", "value": 1}', "bad_name"),
    ('{"action": "refresh", "id": [1]}', "bad_field"),
    ('{"action": "subscribe", "pv": "A", "x": NaN}', "bad_json"),
]


async def test_each_bad_message_gets_an_error_and_the_socket_keeps_serving(ioc, ws):
    client = await ws()
    for text, code in CASES:
        await client.send(text)
        msg = await client.next()
        assert msg.get("code") == code, (text, msg)
        assert isinstance(msg.get("error"), str) and len(msg["error"]) > 10
    await client.send({"action": "subscribe", "pv": f"{P}sine"})
    assert (await client.next())["subscribed"] == [f"{P}sine"]
    await client.next(value_of(f"{P}sine"))


async def test_oversized_message_names_the_limit(ioc, ws):
    client = await ws()
    limit = settings.OAS.max_message_bytes
    await client.send(json.dumps({"action": "subscribe", "pv": "x" * (limit + 10)}))
    msg = await client.next()
    assert msg["code"] == "too_large" and str(limit) in msg["error"]


async def test_absurd_names_fail_individually(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pvs": [f"{P}label", "", "a b", "z" * 300, "tab\there"]})
    summary = await client.next()
    assert summary["subscribed"] == [f"{P}label"]
    assert len(summary["failed"]) == 4 and all(f["error"] for f in summary["failed"])


async def test_thousands_of_pvs_in_one_request(ioc, ws):
    client = await ws()
    await client.send({"action": "subscribe", "pvs": [f"{P}x{i}" for i in range(5000)], "id": "big"})
    msg = await client.next()
    assert msg["code"] == "too_many" and msg["id"] == "big" and "OAS_MAX_NAMES_PER_REQUEST" in msg["error"]


async def test_subscription_limit_per_socket(ioc, ws):
    client = await ws()
    limit = TEST_OAS["max_subscriptions"]
    names = [f"{P}lim{i}" for i in range(limit + 5)]
    await client.send({"action": "subscribe", "pvs": names[:30]})
    await client.next(lambda m: m.get("action") == "subscribe")
    await client.send({"action": "subscribe", "pvs": names[30:]})
    summary = await client.next(lambda m: m.get("action") == "subscribe")
    assert len(summary["subscribed"]) == limit - 30
    assert len(summary["failed"]) == 5 and "OAS_MAX_SUBSCRIPTIONS" in summary["failed"][0]["error"]


async def test_binary_frame_is_refused_politely(ioc, ws):
    client = await ws()
    await client.comm.send_to(bytes_data=b"\x00\x01\x02")
    assert (await client.next())["code"] == "binary_frame"


async def test_bad_client_does_not_disturb_another(ioc, ws):
    good, bad = await ws(), await ws()
    await good.send({"action": "subscribe", "pv": f"{P}sine"})
    await good.next(value_of(f"{P}sine"))
    for text, _ in CASES * 5:
        await bad.send(text)
    got = await good.drain(0.6)
    assert len([m for m in got if value_of(f"{P}sine")(m)]) >= 3


async def test_too_many_requests_in_flight_are_refused_not_queued(ioc, ws):
    client = await ws()
    for i in range(101):  # sets to PVs that never connect wait for their timeout
        await client.send({"action": "set", "pv": f"{P}never:there{i}", "value": 1, "timeout": 3, "id": i})
    busy = await client.next(lambda m: m.get("code") == "busy", timeout=3)
    assert busy["id"] == 100 and "in progress" in busy["error"]
    await client.send({"action": "subscribe", "pv": f"{P}label", "id": "still"})
    assert (await client.next(lambda m: m.get("id") == "still"))["subscribed"] == [f"{P}label"]


async def test_monitor_socket_subscription_limit(ioc, ws):
    client = await ws("/monitor")
    limit = TEST_OAS["max_subscriptions"]
    for i in range(limit):
        await client.send({"action": "connect", "pv": f"{P}mlim{i}"})
    await client.send({"action": "connect", "pv": f"{P}mlim{limit}"})
    err = await client.next(lambda m: m.get("msg_type") == "error")
    assert err["code"] == "too_many" and "OAS_MAX_SUBSCRIPTIONS" in err["error"]
