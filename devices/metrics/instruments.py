"""Every ophydsite_* metric, and the calls the code makes where things happen.

Cold paths (a socket opens, a set ends, a camera frame) use prometheus_client's counters.
Hot paths (PV updates, up to 20,000 a second, and every message to every client) only add
to plain integers the code keeps anyway (``Mailbox.sent``) or to the tallies here, which
cost a dict or list increment; ``LiveCollector`` turns them into metrics when Prometheus
scrapes, reading the live sockets, hubs and bridges of the process. All of that runs on the
event loop, except the bridge's own endpoint, which reads from its HTTP thread (plain reads
of ints and copies of dicts, atomic under the GIL).

Labels are bounded: a protocol, a state, an outcome, never a PV, user, address or socket.
"""

from __future__ import annotations

import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.channel_layer.topics import parse_device_topic

# Counters' *_created series double the output and no dashboard here reads them.
disable_created_metrics()

# --- sockets ----------------------------------------------------------------------------------

# A consumer's path label → the protocol label (bounded: anything else is "other").
PROTOCOLS = {"pv-socket": "pv", "device-socket": "device", "monitor": "monitor", "camera-socket": "camera",
             "qs-console-socket": "console"}
_PROTOCOL_NAMES = ("pv", "device", "monitor", "camera", "console")

SOCKETS_OPENED = Counter("ophydsite_socket_connections", "WebSockets accepted, by protocol.", ["protocol"])
DISCONNECTS = Counter("ophydsite_socket_disconnects", "WebSockets ended, by protocol and close-code class.",
                      ["protocol", "code_class"])
STALLED = Counter("ophydsite_clients_stalled", "Clients closed as stuck (socket accepted nothing for "
                  "OAS_CLIENT_STALL_TIMEOUT_S, or replies piled up past OAS_MAX_PENDING_REPLIES).", ["protocol"])

# session -> protocol, for every open socket of this process (added at accept, removed at close).
_open: dict[Any, str] = {}
# What closed sockets' mailboxes sent and replaced, so totals never go down.
_retired: dict[str, list[int]] = {p: [0, 0, 0] for p in (*_PROTOCOL_NAMES, "other")}  # sent, bytes, replaced


def close_code_class(code: Any) -> str:
    """A close code as a bounded label (RFC 6455 codes by meaning, ours as "application")."""
    if not isinstance(code, int):
        return "none"
    if code == 1000:
        return "normal"
    if code in (1001, 1012):
        return "going_away"  # the client's page left, or the server restarts
    if code in (1005, 1006):
        return "abnormal"  # the connection was cut without a close frame (uvicorn says 1005)
    if code == 1013:
        return "try_again_later"  # the server closed a stuck client
    if 4000 <= code <= 4999:
        return "application"  # 4401 unauthorized and the like
    if 1002 <= code <= 1015:
        return "error"
    return "other"


def socket_opened(session: Any, path_label: str) -> None:
    protocol = PROTOCOLS.get(path_label, "other")
    _open[session] = protocol
    SOCKETS_OPENED.labels(protocol).inc()


def socket_closed(session: Any, code: Any) -> None:
    protocol = _open.pop(session, None)
    if protocol is None:
        return
    mailbox = session.mailbox
    totals = _retired[protocol]
    totals[0] += mailbox.sent
    totals[1] += mailbox.sent_bytes
    totals[2] += mailbox.replaced
    DISCONNECTS.labels(protocol, close_code_class(code)).inc()


def client_stalled(session: Any) -> None:
    STALLED.labels(_open.get(session, "other")).inc()


def payload_size(payload: Any) -> int:
    """Characters of a text frame (bytes, for the ASCII JSON of PV data), bytes of a binary one;
    a camera frame's (description, JPEG) pair counts both."""
    if isinstance(payload, tuple):
        return sum(len(part) for part in payload)
    return len(payload)


# --- sets -------------------------------------------------------------------------------------

SETS = Counter("ophydsite_set_outcomes", "Sets by result: done, refused, interlocked, timeout, error.", ["result"])
_SET_RESULTS = {"done": "done", "interlocked": "interlocked", "timeout": "timeout"}
_REFUSED = frozenset({"forbidden", "rate_limited", "superseded", "read_only", "out_of_limits", "bad_value",
                      "ioc_refused", "busy", "bad_field"})
# Outcomes decided before a set reaches the bridge (services/writes.py); the bridge's are counted
# in the hub, so each set is counted once.
_BEFORE_BRIDGE = frozenset({"forbidden", "interlocked", "rate_limited", "superseded", "audit_unavailable"})


def set_result(status: Any) -> str:
    """A set's status code (docs/protocol.md) as one of five results."""
    if status in _SET_RESULTS:
        return _SET_RESULTS[status]
    return "refused" if status in _REFUSED else "error"


def set_finished(outcome: dict[str, Any]) -> None:
    """A set came back from the bridge (or the bridge did not answer)."""
    SETS.labels(set_result(outcome.get("status"))).inc()


def set_stopped_early(outcome: dict[str, Any]) -> None:
    """A set the write path refused before the bridge (a socket's call; the hub saw no set)."""
    status = outcome.get("status")
    if status in _BEFORE_BRIDGE:
        SETS.labels(set_result(status)).inc()


def set_refused() -> None:
    """A set the protocol refused itself (a read-only subscription)."""
    SETS.labels("refused").inc()


# --- the hub: latency -------------------------------------------------------------------------

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# An update whose IOC timestamp is older than this is a value held since long ago (sent on a
# subscribe or a reconnect), not a measure of delay: left out.
LATENCY_MAX_S = 60.0


class LatencyTally:
    """A histogram kept as plain counts: a bisect and two adds per update (prometheus_client's
    Histogram.observe costs ~1.3 µs, a tenth of the whole path of an update)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe_update(self, msg: dict[str, Any]) -> None:
        """A value update reaches this process's clients: IOC timestamp to now. Meta updates
        carry no top-level timestamp and are skipped."""
        stamp = msg.get("timestamp")
        if stamp is None:
            return
        delay = time.time() - stamp
        if delay > LATENCY_MAX_S:
            return
        if delay < 0.0:
            delay = 0.0  # the IOC's clock is ahead of ours
        self.counts[bisect_left(self.bounds, delay)] += 1
        self.total += delay

    def family(self) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip([*self.bounds, float("inf")], list(self.counts), strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return HistogramMetricFamily(
            "ophydsite_update_latency_seconds",
            "IOC timestamp of a value update to the moment this process hands it to its clients' mailboxes "
            "(sent to the client next, unless it is slow; see ophydsite_mailbox_replaced_total).",
            buckets=buckets, sum_value=self.total)


LATENCY = LatencyTally()

# --- the bridge -------------------------------------------------------------------------------

# Monitor events from IOCs and device signals, by protocol (before the rate cap).
UPSTREAM: dict[str, int] = {"ca": 0, "pva": 0, "device": 0}


def protocol_of(topic: str) -> str:
    """``ca``, ``pva`` or ``device`` (an ophyd signal) for a bridge topic."""
    if topic.startswith("pva://"):
        return "pva"
    return "device" if parse_device_topic(topic) is not None else "ca"


# Running bridges and hubs of this process, read at scrape time.
_bridges: weakref.WeakSet[Any] = weakref.WeakSet()
_hubs: weakref.WeakSet[Any] = weakref.WeakSet()


def bridge_running(bridge: Any) -> None:
    _bridges.add(bridge)


def bridge_stopped(bridge: Any) -> None:
    _bridges.discard(bridge)


def bridges() -> list[Any]:
    return _copy(_bridges)


def hub_started(hub: Any) -> None:
    _hubs.add(hub)


def _copy(items: weakref.WeakSet[Any]) -> list[Any]:
    """A WeakSet's members, retried if another thread changes it meanwhile (rare: a bridge
    starting while the bridge's HTTP thread scrapes)."""
    for _ in range(5):
        try:
            return list(items)
        except RuntimeError:
            continue
    return []


# --- cameras ----------------------------------------------------------------------------------

CAMERA_FRAMES = Counter("ophydsite_camera_frames", "Camera frames: received from the source, encoded "
                        "(once per output setting), sent (handed to a viewer's mailbox).", ["stage"])
CAMERA_RECEIVED = CAMERA_FRAMES.labels("received")
CAMERA_ENCODED = CAMERA_FRAMES.labels("encoded")
CAMERA_SENT = CAMERA_FRAMES.labels("sent")

# --- dependencies -----------------------------------------------------------------------------

# dependency -> 1 (reachable) or 0, written by the endpoint just before it renders; a
# dependency this process does not use is absent.
DEPENDENCIES: dict[str, int] = {}

# --- HTTP and the database --------------------------------------------------------------------

HTTP_REQUESTS = Counter("ophydsite_http_requests", "HTTP requests by method, route pattern and status class.",
                        ["method", "route", "status"])
HTTP_DURATION = Histogram("ophydsite_http_request_duration_seconds", "HTTP request time by method and route "
                          "pattern (the whole middleware chain and view).", ["method", "route"])
DB_DURATION = Histogram("ophydsite_db_query_duration_seconds", "Database statements by connection alias, "
                        "timed in Django's cursor.", ["alias"],
                        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
DB_ERRORS = Counter("ophydsite_db_query_errors", "Database statements that raised, by connection alias.", ["alias"])


def _timed_query(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Django execute wrapper: one histogram observation per statement."""
    alias = context["connection"].alias
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    except Exception:
        DB_ERRORS.labels(alias).inc()
        raise
    finally:
        DB_DURATION.labels(alias).observe(time.perf_counter() - start)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Time every statement of every connection, without swapping the database engine
    (django-prometheus' way, which needs settings this module does not own)."""
    if _timed_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_timed_query)


def _hook_database() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, dispatch_uid="ophydsite-metrics-db")


# --- what is read at scrape time -------------------------------------------------------------

_STATES = ("connected", "disconnected", "connecting")


class LiveCollector(Collector):
    """The metrics read from the live objects when Prometheus asks."""

    def collect(self) -> Iterator[Metric]:
        yield from self._sockets()
        yield from self._hubs()
        yield from self._bridges()
        up = GaugeMetricFamily("ophydsite_dependency_up", "Whether a dependency answered at the last scrape "
                               "(database, redis, bridge, queue_server).", labels=["dependency"])
        for name, state in sorted(DEPENDENCIES.items()):
            up.add_metric([name], state)
        yield up

    def _sockets(self) -> Iterable[Metric]:
        open_now = list(_open.items())
        gauges = {name: GaugeMetricFamily(name, doc, labels=["protocol"]) for name, doc in (
            ("ophydsite_open_sockets", "Open WebSockets by protocol."),
            ("ophydsite_client_subscriptions", "Subscriptions of the open sockets, summed, by protocol (a "
             "device socket counts devices)."),
            ("ophydsite_client_subscriptions_max", "Subscriptions of the open socket that holds the most."))}
        counters = {name: CounterMetricFamily(name, doc, labels=["protocol"]) for name, doc in (
            ("ophydsite_client_messages_sent", "WebSocket messages sent to clients (a batch frame counts once)."),
            ("ophydsite_client_bytes_sent", "Payload sent to clients: characters of text frames, bytes of binary."),
            ("ophydsite_mailbox_replaced", "Updates replaced in a client's mailbox by a newer one before they "
             "were sent (the client reads slower than its PVs change)."))}
        per: dict[str, list[int]] = {p: [0, 0, 0] for p in _retired}  # sockets, subscriptions, max
        sums = {p: list(v) for p, v in _retired.items()}
        for session, protocol in open_now:
            held = len(getattr(session, "subscribed", ()))
            stats = per[protocol]
            stats[0] += 1
            stats[1] += held
            stats[2] = max(stats[2], held)
            mailbox = session.mailbox
            total = sums[protocol]
            total[0] += mailbox.sent
            total[1] += mailbox.sent_bytes
            total[2] += mailbox.replaced
        for protocol in _retired:
            if protocol == "other" and not per["other"][0] and not any(sums["other"]):
                continue
            for name, value in zip(gauges, per[protocol], strict=True):
                gauges[name].add_metric([protocol], value)
            for name, value in zip(counters, sums[protocol], strict=True):
                counters[name].add_metric([protocol], value)
        yield from gauges.values()
        yield from counters.values()

    def _hubs(self) -> Iterable[Metric]:
        hubs = _copy(_hubs)
        unique = GaugeMetricFamily("ophydsite_subscriptions_unique", "PVs and device signals this process "
                                   "holds for its clients (one bridge lease each, whatever the number of clients).")
        unique.add_metric([], sum(len(getattr(hub, "_clients", ())) for hub in hubs))
        yield unique
        yield LATENCY.family()

    def _bridges(self) -> Iterable[Metric]:
        running = bridges()
        upstream = CounterMetricFamily("ophydsite_upstream_updates", "Monitor events received from IOCs and "
                                       "device signals, by protocol (before the rate cap).", labels=["protocol"])
        for protocol, count in UPSTREAM.items():
            upstream.add_metric([protocol], count)
        yield upstream
        if not running:
            return
        channels = GaugeMetricFamily("ophydsite_channels", "Channels the bridge holds, by protocol (ca, pva, "
                                     "device) and state (connected, disconnected, connecting: never yet).",
                                     labels=["protocol", "state"])
        counts = {(p, s): 0 for p in ("ca", "pva", "device") for s in _STATES}
        leases = published = batches = 0
        for bridge in running:
            for name, entry in list(bridge.entries.items()):
                state = "connected" if entry.connected else "disconnected" if entry.ever_connected else "connecting"
                counts[(protocol_of(name), state)] += 1
                leases += len(entry.leases)
            published += bridge.publisher.sent
            batches += bridge.publisher.batches
        for (protocol, state), count in counts.items():
            channels.add_metric([protocol, state], count)
        yield channels
        lease = GaugeMetricFamily("ophydsite_bridge_leases", "Leases the bridge holds: (PV, server process) pairs.")
        lease.add_metric([], leases)
        yield lease
        sent = CounterMetricFamily("ophydsite_bridge_published", "Updates and messages the bridge handed to the "
                                   "channel layer (or to a hub on its own loop).")
        sent.add_metric([], published)
        yield sent
        ticks = CounterMetricFamily("ophydsite_bridge_batches", "Batches of updates the bridge sent (one per hub "
                                    "per tick).")
        ticks.add_metric([], batches)
        yield ticks


REGISTRY.register(LiveCollector())
_hook_database()
