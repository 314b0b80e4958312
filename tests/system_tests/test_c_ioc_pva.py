"""ca:// and pva:// names of the same records, through a real ``serve`` process, against a real
EPICS C IOC serving both protocols at once (tests/support/dual_ioc.py: pythonSoftIOC records,
rsrv for CA, pvxs' QSRV for PVA): the same values and metadata over both, sets over PVA seen
over CA, /monitor and REST, OAS_DEFAULT_PROTOCOL=pva, a PVA name no server answers, and the IOC
killed and restarted.

How QSRV presents these records (measured with p4p 4.3.0 / pvxslibs 1.5.3): ai, ao and
stringout as NTScalar, the waveform as NTScalarArray (all with display.units/precision and, for
numbers, display.limitLow/High = LOPR/HOPR and control.limitLow/High = DRVL/DRVH for the ao,
LOPR/HOPR for the ai, 0/0 for the waveform), the mbbo as NTEnum (value.index, value.choices;
no units). So the metadata the bridge sends is the same over both protocols, except:

- stringout ``units``: ``null`` over CA (DBR_STRING has no units), ``""`` over PVA (QSRV sends
  an empty ``display.units``);
- ``timestamp``: the same instant, but CA's and PVA's conversions to float seconds may round
  differently (seen: 1 µs apart on the waveform); compared to 10 µs here.

A put outside DRVL/DRVH is not refused by the IOC itself over either protocol: the ao record
clamps it (a raw p4p put of 7.0 to ``ao`` completes without error and the record holds 5.0).
The refusal a client gets comes from the bridge's own check against the control limits, which
QSRV carries (control.limitLow/High = DRVL/DRVH): code ``out_of_limits``, the same over CA and PVA.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets

from tests.support.dual_ioc import AO_DRIVE_LIMITS, GROUP, INITIAL, MBBO_STATES, OPR_LIMITS, DualIocProcess
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

CONNECT_TIMEOUT_S = 1.5
RECORDS = ("ai", "ao", "mbbo", "wf", "so")
# What each record's metadata message says (both protocols), from the IOC's record fields.
METADATA = {
    "ai": {"units": "V", "precision": 3, "lower_ctrl_limit": OPR_LIMITS[0], "upper_ctrl_limit": OPR_LIMITS[1],
           "enum_strs": None},
    "ao": {"units": "mm", "precision": 2, "lower_ctrl_limit": AO_DRIVE_LIMITS[0],
           "upper_ctrl_limit": AO_DRIVE_LIMITS[1], "enum_strs": None},
    "mbbo": {"units": None, "precision": None, "lower_ctrl_limit": None, "upper_ctrl_limit": None,
             "enum_strs": MBBO_STATES},
    "wf": {"units": "counts", "precision": 1, "lower_ctrl_limit": 0.0, "upper_ctrl_limit": 0.0, "enum_strs": None},
    "so": {"units": None, "precision": None, "lower_ctrl_limit": None, "upper_ctrl_limit": None, "enum_strs": None},
}
COMPARED = ("connected", "read_access", "write_access", "status", "severity", "units", "precision",
            "lower_ctrl_limit", "upper_ctrl_limit", "enum_strs")
# (record, field) → (over CA, over PVA): the real differences (see the module docstring).
KNOWN_DIFFERENCES = {("so", "units"): (None, "")}


def ca(record: str) -> str:
    return f"ca://{DualIocProcess.pvname(record)}"


def pva(record: str) -> str:
    return f"pva://{DualIocProcess.pvname(record)}"


@pytest.fixture(scope="module")
def server(dual_ioc: DualIocProcess) -> Iterator[ServerProcess]:
    """ophydsite with its CA and PVA clients pointed at the dual IOC only."""
    proc = ServerProcess({**dual_ioc.client_env(), "OAS_ANONYMOUS_WRITES": "true",
                          "OAS_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S)}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pva_default_server(dual_ioc: DualIocProcess) -> Iterator[ServerProcess]:
    """A second server, where a bare name means PV Access."""
    proc = ServerProcess({**dual_ioc.client_env(), "OAS_DEFAULT_PROTOCOL": "pva", "OAS_ANONYMOUS_WRITES": "true",
                          "OAS_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S)}).start()
    yield proc
    proc.stop()


Predicate = Callable[[dict[str, Any]], bool]


async def read_until(conn: Any, where: Predicate, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await conn.recv())
            if where(message):
                return message


async def each(conn: Any, *wanted: Predicate, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The first message matching each predicate, whatever their order on the wire."""
    found: dict[int, dict[str, Any]] = {}
    seen: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(found) < len(wanted):
                message = json.loads(await conn.recv())
                seen.append(message)
                for i, where in enumerate(wanted):
                    if i not in found and where(message):
                        found[i] = message
                        break
    except TimeoutError:
        missing = [i for i in range(len(wanted)) if i not in found]
        raise AssertionError(f"after {timeout} s, predicates {missing} unmatched; last messages: {seen[-8:]}") from None
    return [found[i] for i in range(len(wanted))]


def value_of(pv: str, value: Any = None, connected: bool | None = True) -> Predicate:
    return lambda m: (m.get("pv") == pv and "value" in m and m.get("sub_type") != "meta"
                      and (connected is None or m.get("connected") is connected)
                      and (value is None or m["value"] == value))


def meta_of(pv: str) -> Predicate:
    return lambda m: m.get("pv") == pv and m.get("sub_type") == "meta"


def reply(request_id: int) -> Predicate:
    return lambda m: m.get("id") == request_id


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


async def subscribe(conn: Any, names: list[str], request_id: int = 1) -> dict[str, Any]:
    await conn.send(json.dumps({"action": "subscribe", "pvs": names, "id": request_id}))
    summary = await read_until(conn, reply(request_id))
    assert summary["subscribed"] == names and summary["failed"] == [], summary
    return summary


async def set_pv(conn: Any, pv: str, value: Any, request_id: int, *also: Predicate,
                 **fields: Any) -> dict[str, Any]:
    """Send a set (with ``fields`` such as ``timeout``) and return its outcome, having also seen
    a message matching each of ``also`` (in any order with the outcome)."""
    await conn.send(json.dumps({"action": "set", "pv": pv, "value": value, "id": request_id, **fields}))
    outcome, *_ = await each(conn, reply(request_id), *also)
    return outcome


# --- tests (in this order: the first expects the IOC's initial values, the last restarts it) ----


async def test_every_record_reads_the_same_over_ca_and_pva(server):
    names = [name for record in RECORDS for name in (ca(record), pva(record))]
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await subscribe(conn, names)
        got = await each(conn, *[meta_of(n) for n in names], *[value_of(n) for n in names])
    metas, values = dict(zip(names, got[:len(names)], strict=True)), dict(zip(names, got[len(names):], strict=True))
    for record in RECORDS:
        over_ca, over_pva = metas[ca(record)], metas[pva(record)]
        for field in COMPARED:
            pair = (over_ca[field], over_pva[field])
            expected = KNOWN_DIFFERENCES.get((record, field))
            if expected is None:
                assert pair[0] == pair[1], (record, field, over_ca, over_pva)
            else:
                assert pair == expected, (record, field, over_ca, over_pva)
        assert over_ca["connected"] and over_ca["severity"] == 0, over_ca
        wanted = METADATA[record]
        assert {k: over_ca[k] for k in wanted} == wanted, (record, over_ca)
        assert over_ca["timestamp"] == pytest.approx(over_pva["timestamp"], abs=1e-5)
        value_ca, value_pva = values[ca(record)], values[pva(record)]
        assert value_ca["value"] == value_pva["value"] == INITIAL[record], (value_ca, value_pva)
        assert value_ca["timestamp"] == pytest.approx(value_pva["timestamp"], abs=1e-5)
        assert (value_ca["severity"], value_ca["write_access"]) == (value_pva["severity"], value_pva["write_access"])
    assert isinstance(values[pva("wf")]["value"], list) and isinstance(values[pva("mbbo")]["value"], int)


async def test_a_pva_set_of_the_ao_within_its_limits_is_done_and_seen_over_ca(server):
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await subscribe(conn, [ca("ao"), pva("ao")])
        await each(conn, value_of(ca("ao")), value_of(pva("ao")))
        done = await set_pv(conn, pva("ao"), 2.75, 2, value_of(ca("ao"), 2.75), value_of(pva("ao"), 2.75))
        assert (done["status"], done["target"], done["written"]) == ("done", pva("ao"), 2.75), done
        # the limits are DRVL/DRVH (control.limitLow/High over PVA), not LOPR/HOPR
        high = AO_DRIVE_LIMITS[1]
        refused = await set_pv(conn, pva("ao"), high + 2, 3)
        assert (refused["status"], refused["code"]) == ("out_of_limits", "out_of_limits"), refused
        assert refused["error"] == (f"Value {high + 2} is outside the control limits of {pva('ao')}: "
                                    f"low {AO_DRIVE_LIMITS[0]}, high {high}"), refused
        refused_ca = await set_pv(conn, ca("ao"), high + 2, 4)
        assert (refused_ca["status"], refused_ca["code"]) == ("out_of_limits", "out_of_limits"), refused_ca
        low_refused = await set_pv(conn, pva("ao"), AO_DRIVE_LIMITS[0] - 0.5, 5)
        assert low_refused["status"] == "out_of_limits", low_refused
        # a value between DRVH and HOPR is refused too, and nothing reached the IOC
        assert (await set_pv(conn, pva("ao"), (high + OPR_LIMITS[1]) / 2, 6))["status"] == "out_of_limits"
    body = await asyncio.to_thread(get_json, f"{server.http}/api/v1/pvs/{ca('ao')}")
    assert body[ca("ao")]["value"] == 2.75, body


async def test_the_iocs_own_refusal_reaches_the_client_over_both_protocols(server):
    """pythonSoftIOC's input records have DISP=1: the IOC refuses every put to the ai. Both
    protocols end as ``ioc_refused``, but with different messages (a real difference): over PVA
    QSRV's own reason ("Unable to put value: Field Disabled: S_db_putDisabled"), over CA only
    libca's generic ECA_PUTFAIL text ("Channel write request failed"). The CA message names the
    PV bare (``DUAL:ai``) although the client spelled it ``ca://DUAL:ai`` (``target`` is right)."""
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        over_pva = await set_pv(conn, pva("ai"), 1.0, 1)
        over_ca = await set_pv(conn, ca("ai"), 1.0, 2)
    assert (over_pva["status"], over_pva["code"], over_pva["target"]) == ("ioc_refused", "ioc_refused", pva("ai"))
    assert over_pva["error"] == (f"The write to {pva('ai')} failed: "
                                 "Unable to put value: Field Disabled: S_db_putDisabled"), over_pva
    assert (over_ca["status"], over_ca["code"], over_ca["target"]) == ("ioc_refused", "ioc_refused", ca("ai"))
    assert over_ca["error"] == "The write to DUAL:ai failed: Channel write request failed", over_ca
    body = await asyncio.to_thread(get_json, f"{server.http}/api/v1/pvs/{pva('ai')}")
    assert body[pva("ai")]["value"] == INITIAL["ai"], body


async def test_the_mbbo_is_set_over_pva_by_choice_name_and_by_index(server):
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await subscribe(conn, [ca("mbbo"), pva("mbbo")])
        await each(conn, value_of(ca("mbbo")), value_of(pva("mbbo")))
        fault = MBBO_STATES.index("Fault")
        done = await set_pv(conn, pva("mbbo"), "Fault", 2, value_of(ca("mbbo"), fault), value_of(pva("mbbo"), fault))
        assert (done["status"], done["written"]) == ("done", fault), done
        done = await set_pv(conn, pva("mbbo"), 0, 3, value_of(ca("mbbo"), 0), value_of(pva("mbbo"), 0))
        assert (done["status"], done["written"]) == ("done", 0), done
        for request_id, bad in ((4, len(MBBO_STATES)), (5, "Nope")):
            refused = await set_pv(conn, pva("mbbo"), bad, request_id)
            assert refused["status"] == "bad_value" and "'Off', 'On', 'Fault'" in refused["error"], refused


async def test_waveform_and_string_sets_over_pva_are_seen_over_ca(server):
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        names = [ca("wf"), pva("wf"), ca("so"), pva("so")]
        await subscribe(conn, names)
        await each(conn, *[value_of(n) for n in names])
        new = [5.0, 6.5, -7.0]
        done = await set_pv(conn, pva("wf"), new, 2, value_of(ca("wf"), new), value_of(pva("wf"), new))
        assert done["status"] == "done", done
        done = await set_pv(conn, pva("so"), "bye", 3, value_of(ca("so"), "bye"), value_of(pva("so"), "bye"))
        assert done["status"] == "done", done
        too_long = await set_pv(conn, pva("wf"), list(range(len(INITIAL["wf"]) + 1)), 4)
        assert too_long["status"] == "bad_value", too_long


async def test_monitor_and_rest_on_the_c_ioc(server):
    async with websockets.connect(f"{server.ws}/monitor") as conn:
        for record in ("ai", "mbbo"):
            for name in (ca(record), pva(record)):
                await conn.send(json.dumps({"action": "connect", "pv": name}))
        got = await each(conn, *[(lambda m, n=n: m.get("msg_type") == "monitor" and m.get("pvname") == n)
                                 for n in (ca("ai"), pva("ai"), ca("mbbo"), pva("mbbo"))])
        ai_ca, ai_pva, mbbo_ca, mbbo_pva = got
        assert ai_ca["value"] == ai_pva["value"] == INITIAL["ai"], got
        assert mbbo_ca["value"] == mbbo_pva["value"], got
    for record in ("ai", "ao", "mbbo", "wf", "so"):
        over_ca, over_pva = await asyncio.gather(
            asyncio.to_thread(get_json, f"{server.http}/api/v1/pvs/{ca(record)}"),
            asyncio.to_thread(get_json, f"{server.http}/api/v1/pvs/{pva(record)}"))
        assert over_ca["pv"] == ca(record) and over_pva["pv"] == pva(record), (over_ca, over_pva)
        assert over_ca[ca(record)]["value"] == over_pva[pva(record)]["value"], (over_ca, over_pva)
        assert over_ca[ca(record)]["connected"] is over_pva[pva(record)]["connected"] is True
        for field in ("units", "precision", "lower_ctrl_limit", "upper_ctrl_limit", "enum_strs"):
            pair = (over_ca["meta"].get(field), over_pva["meta"].get(field))
            assert pair == KNOWN_DIFFERENCES.get((record, field), (pair[0], pair[0])), (record, field, pair)
    ai = await asyncio.to_thread(get_json, f"{server.http}/api/v1/pvs/{pva('ai')}")
    assert ai[pva("ai")]["value"] == INITIAL["ai"], ai


async def test_default_protocol_pva_makes_a_bare_name_pv_access(server, pva_default_server, dual_ioc):
    """The observable: ``DUAL:group`` is a QSRV group (NTScalar-shaped, holding ``ao``'s value)
    that only PV Access serves. With OAS_DEFAULT_PROTOCOL=pva the bare name connects and
    follows ``ao``; with the default (ca) the same bare name never connects."""
    bare = dual_ioc.pvname(GROUP)
    async with websockets.connect(f"{pva_default_server.ws}/api/v1/pv-socket") as conn:
        await subscribe(conn, [bare, ca("ao")])
        meta, first, ao = await each(conn, meta_of(bare), value_of(bare), value_of(ca("ao")))
        assert meta["connected"] is True and "code" not in meta, meta
        assert first["value"] == ao["value"], (first, ao)
        done = await set_pv(conn, ca("ao"), -1.5, 2, value_of(bare, -1.5))
        assert done["status"] == "done", done
        # one PV however it is spelled: with the default pva, ``DUAL:ao`` is ``pva://DUAL:ao``
        await subscribe(conn, [dual_ioc.pvname("ao")], 3)
        await read_until(conn, value_of(dual_ioc.pvname("ao"), -1.5))
        await conn.send(json.dumps({"action": "subscribe", "pv": pva("ao"), "id": 4}))
        summary = await read_until(conn, reply(4))  # named as first spelled (docs/protocol.md)
        assert (summary["subscribed"], summary["already_subscribed"]) == ([], [dual_ioc.pvname("ao")]), summary
    body = await asyncio.to_thread(get_json, f"{pva_default_server.http}/api/v1/pvs/{bare}")
    assert body["pv"] == bare and body[bare]["value"] == -1.5, body
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await subscribe(conn, [bare])
        lost = await read_until(conn, value_of(bare, connected=None), timeout=CONNECT_TIMEOUT_S + 5)
        assert (lost["connected"], lost["value"]) == (False, None), lost


async def test_two_spellings_of_one_pv_in_one_request_keep_the_first(pva_default_server, dual_ioc):
    bare = dual_ioc.pvname("mbbo")
    async with websockets.connect(f"{pva_default_server.ws}/api/v1/pv-socket") as conn:
        await conn.send(json.dumps({"action": "subscribe", "pvs": [bare, pva("mbbo")], "id": 1}))
        summary = await read_until(conn, reply(1))
        assert summary["subscribed"] == [bare], summary  # the first spelling stands
        first = await read_until(conn, lambda m: "value" in m and m.get("sub_type") != "meta")
        assert first["pv"] == bare, first


async def test_a_pva_name_no_server_answers(server):
    name = "pva://NOPE:x"
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        started = time.monotonic()
        await subscribe(conn, [name])
        lost = await read_until(conn, value_of(name, connected=None), timeout=CONNECT_TIMEOUT_S + 5)
        waited = time.monotonic() - started
        assert (lost["connected"], lost["value"]) == (False, None), lost
        assert CONNECT_TIMEOUT_S - 0.5 <= waited <= CONNECT_TIMEOUT_S + 4, waited
        await subscribe(conn, [pva("ai")], 2)  # the socket still serves
        assert (await read_until(conn, value_of(pva("ai"))))["value"] == INITIAL["ai"]
        refused = await set_pv(conn, name, 1.0, 3, timeout=1.0)  # the set waits for a connection that never comes
        assert (refused["status"], refused["code"]) == ("not_connected", "not_connected"), refused
        assert (await set_pv(conn, pva("so"), "still here", 4))["status"] == "done"


async def test_the_ioc_killed_and_restarted_on_the_same_ports(server, dual_ioc):
    names = [ca("ao"), pva("ao"), ca("mbbo"), pva("mbbo")]
    async with websockets.connect(f"{server.ws}/api/v1/pv-socket") as conn:
        await subscribe(conn, names)
        await each(conn, *[value_of(n) for n in names])
        await asyncio.to_thread(dual_ioc.stop)
        lost = await each(conn, *[value_of(n, connected=False) for n in names], timeout=10)
        assert all(m["value"] is None or m["connected"] is False for m in lost), lost
        await asyncio.to_thread(dual_ioc.start)
        try:
            back = await each(conn, *[value_of(n, connected=True) for n in names], timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nnames {names}\nIOC stderr:\n{dual_ioc.stderr_text()[-2000:]}\n"
                                 f"server:\n{server.output()[-2000:]}") from None
        assert [m["value"] for m in back] == [INITIAL["ao"], INITIAL["ao"], INITIAL["mbbo"], INITIAL["mbbo"]], back
