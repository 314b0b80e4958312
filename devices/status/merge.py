"""Several processes' snapshots as one status: sockets listed with their process, PVs held by
several processes added up, leases named by the process that holds them, processes that did
not answer listed as missing."""

from __future__ import annotations

import time
from typing import Any

from .snapshot import Limits


def merge_snapshots(reports: list[dict[str, Any]], *, missing: list[dict[str, Any]] | None = None,
                    limits: Limits | None = None) -> dict[str, Any]:
    """One status from each answering process's snapshot (``process_snapshot``)."""
    limits = limits or Limits()
    reports = sorted(reports, key=lambda r: (r.get("role") != "server", str(r.get("process"))))
    hub_owner = {channel: r["process"] for r in reports for channel in r.get("hub_channels", ())}
    sockets = [{**s, "process": r["process"]} for r in reports for s in r.get("sockets", ())]
    sockets.sort(key=lambda s: (s.get("since") or 0.0, s["id"]))
    pvs, pv_count = _merge_pvs(reports, limits)
    cameras = [{**c, "process": r["process"]} for r in reports for c in r.get("cameras", ())]
    bridges = [_named_leases({**b, "process": r["process"]}, hub_owner) for r in reports for b in r.get("bridges", ())]
    bridges.sort(key=lambda b: b["shard"])
    console = next((r["console"] for r in reports if r.get("console") is not None), None)
    processes = [{
        "process": r["process"], "role": r.get("role"), "host": r.get("host"), "pid": r.get("pid"),
        "started": r.get("started"), "sockets": len(r.get("sockets", ())), "pvs": r.get("pvs_count", 0),
        "answered_ms": r.get("answered_ms"),
    } for r in reports]
    return {
        "at": time.time(), "processes": processes, "missing": list(missing or []),
        "sockets": sockets, "sockets_count": len(sockets), "pvs": pvs, "pvs_count": pv_count,
        "cameras": cameras, "bridges": bridges, "console": console,
        "limits": {"max_names": limits.max_names, "max_pvs": limits.max_pvs},
    }


def _merge_pvs(reports: list[dict[str, Any]], limits: Limits) -> tuple[list[dict[str, Any]], int]:
    """A PV held by several processes once: clients added up, the fastest rate, the newest
    update; ``connected`` only if every process sees it connected. Each process lists at most
    ``max_pvs`` (most clients first) and counts all, so the total count is a sum of counts:
    it over-counts a PV held by several processes beyond those lists."""
    merged: dict[str, dict[str, Any]] = {}
    unlisted = 0
    for report in reports:
        listed = report.get("pvs", ())
        unlisted += max(0, int(report.get("pvs_count", len(listed))) - len(listed))
        for pv in listed:
            have = merged.get(pv["name"])
            if have is None:
                merged[pv["name"]] = {**pv, "processes": [report["process"]]}
                continue
            have["clients"] += pv["clients"]
            have["processes"].append(report["process"])
            have["connected"] = have["connected"] and pv["connected"]
            have["updates"] = max(have["updates"], pv["updates"])
            have["updates_per_s"] = _max(have["updates_per_s"], pv["updates_per_s"])
            have["last_update"] = _max(have["last_update"], pv["last_update"])
    out = sorted(merged.values(), key=lambda e: (-e["clients"], e["name"]))
    return out[:limits.max_pvs], len(merged) + unlisted


def _named_leases(bridge: dict[str, Any], hub_owner: dict[str, str]) -> dict[str, Any]:
    """Lease holders by process id where known (a hub channel of a process that answered)."""
    leases = []
    for lease in bridge.get("leases", ()):
        holders = [{"process": hub_owner.get(hub, "?"), "hub": hub, "expires_in_s": left}
                   for hub, left in (lease.get("hubs") or {}).items()]
        leases.append({**lease, "hubs": holders})
    return {**bridge, "leases": leases}


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
