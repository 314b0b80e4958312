"""Snapshots of several processes merged into one status."""

from __future__ import annotations

from devices.status.merge import merge_snapshots
from devices.status.snapshot import Limits


def report(process: str, role: str, *, hub: str, sockets: list[dict], pvs: list[dict], pvs_count: int | None = None,
           bridges: list[dict] | None = None, console: dict | None = None) -> dict:
    return {"process": process, "role": role, "host": process.split(":")[0], "pid": 1, "started": 1.0,
            "hub_channels": [hub] if hub else [], "sockets": sockets, "pvs": pvs,
            "pvs_count": len(pvs) if pvs_count is None else pvs_count, "cameras": [], "bridges": bridges or [],
            "console": console}


def pv(name: str, clients: int, rate: float | None, connected: bool = True, last: float | None = 5.0) -> dict:
    return {"name": name, "protocol": "ca", "clients": clients, "updates": 10, "updates_per_s": rate,
            "connected": connected, "last_update": last}


def sock(sid: str, since: float) -> dict:
    return {"id": sid, "since": since, "protocol": "pv", "subscriptions": 1, "targets": ["A"]}


def test_two_servers_and_a_bridge_merge():
    lease = {"pv": "A", "protocol": "ca", "state": "connected", "hubs": {"hub-1": 20.0, "hub-2": 25.0, "gone": 3.0}}
    bridge = {"shard": 0, "shards": 1, "channels": 2, "leases_total": 3, "leases": [lease]}
    merged = merge_snapshots([
        report("b:3", "bridge", hub="", sockets=[], pvs=[], bridges=[bridge], console={"connected": True}),
        report("s:2", "server", hub="hub-2", sockets=[sock("pv-socket-2", 2.0)],
               pvs=[pv("A", 3, 7.0, last=9.0), pv("B", 1, None, connected=False)]),
        report("s:1", "server", hub="hub-1", sockets=[sock("pv-socket-1", 1.0)], pvs=[pv("A", 2, 5.0)]),
    ], missing=[{"process": "s:9", "role": "server", "last_seen": 1.0}])
    assert [p["process"] for p in merged["processes"]] == ["s:1", "s:2", "b:3"]  # servers first
    assert [(s["id"], s["process"]) for s in merged["sockets"]] == [("pv-socket-1", "s:1"), ("pv-socket-2", "s:2")]
    assert merged["sockets_count"] == 2
    a, b = merged["pvs"]
    assert a["name"] == "A" and a["clients"] == 5 and sorted(a["processes"]) == ["s:1", "s:2"]
    assert a["updates_per_s"] == 7.0 and a["last_update"] == 9.0 and a["connected"]
    assert b["name"] == "B" and not b["connected"] and merged["pvs_count"] == 2
    holders = merged["bridges"][0]["leases"][0]["hubs"]
    assert {h["hub"]: h["process"] for h in holders} == {"hub-1": "s:1", "hub-2": "s:2", "gone": "?"}
    assert merged["bridges"][0]["process"] == "b:3" and merged["console"] == {"connected": True}
    assert merged["missing"] == [{"process": "s:9", "role": "server", "last_seen": 1.0}]


def test_a_pv_is_connected_only_if_every_process_sees_it_so():
    merged = merge_snapshots([report("s:1", "server", hub="h1", sockets=[], pvs=[pv("A", 1, None)]),
                              report("s:2", "server", hub="h2", sockets=[], pvs=[pv("A", 1, 2.0, connected=False)])])
    assert merged["pvs"][0]["connected"] is False and merged["pvs"][0]["updates_per_s"] == 2.0


def test_the_merged_pv_list_is_capped_and_counts_what_processes_left_out():
    merged = merge_snapshots([
        report("s:1", "server", hub="h1", sockets=[], pvs=[pv(f"P{i}", 1, None) for i in range(5)], pvs_count=40),
        report("s:2", "server", hub="h2", sockets=[], pvs=[pv("P0", 2, None)]),
    ], limits=Limits(max_pvs=3))
    assert [p["name"] for p in merged["pvs"]] == ["P0", "P1", "P2"] and merged["pvs"][0]["clients"] == 3
    assert merged["pvs_count"] == 5 + 35  # five listed names, 35 more that s:1 only counted
    assert merged["limits"] == {"max_names": 50, "max_pvs": 3}


def test_no_process_answered():
    merged = merge_snapshots([], missing=[{"process": "bridge shard 0/1", "role": "bridge", "last_seen": None}])
    assert merged["processes"] == [] and merged["sockets"] == [] and merged["console"] is None
    assert merged["missing"][0]["process"] == "bridge shard 0/1"
