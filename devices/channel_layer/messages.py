"""Channel-layer message types between worker processes and the bridge.

Written down in one place (see also docs/protocol.md, "Inside the server"). Values travel
as pre-serialised JSON text so they are encoded once and copied cheaply.
"""

from __future__ import annotations

from typing import Any, TypedDict

# The bridge reads commands from this channel on the "bridge" layer alias. It has a single
# reader, so two bridges never both carry out the same set. Sharded bridges read one channel
# each instead (shards.bridge_channel); with one shard it is this one.
BRIDGE_CHANNEL = "ophydsite.bridge"

SUBSCRIBE = "bridge.subscribe"  # worker → bridge: {hub, pvs}; bridge replies with snapshots
RENEW = "bridge.renew"  # worker → bridge: {hub, pvs}; keeps the leases alive
RELEASE = "bridge.release"  # worker → bridge: {hub, pvs}
SET = "bridge.set"  # worker → bridge: {hub, request, pv, value, timeout}
STOP = "bridge.stop"  # worker → bridge: {hub, request, pv}; stop the positioner behind a device topic
RELOAD = "bridge.reload"  # worker → bridge: {hub, request}; reload the device registry
DESCRIBE = "bridge.describe"  # worker → bridge: {hub, request, devices}; reply {devices: {name: plan|None}, known}
REPLY = "bridge.reply"  # bridge → worker channel: {request, outcome}
PV_VALUE = "pv.value"  # an update of a PV's value, inside a batch
PV_META = "pv.meta"  # an update of a PV's metadata, inside a batch
# bridge → worker channel, per tick: {updates: JSON text of a list of pv.value / pv.meta
# messages}, the updates of the PVs this worker leases (see bridge/publisher.py).
PV_BATCH = "pv.batch"
# The Queue Server console (qsconsole/relay.py): the bridge reads it once for the deployment.
CONSOLE_GROUP = "qs.console"  # hubs with console clients join it
CONSOLE_WATCH = "console.watch"  # worker → bridge: {hub}; start reading the console (idempotent)
CONSOLE_REPLAY = "console.replay"  # worker → bridge: {hub, request, after?, last?}; reply {entries, complete, state}
CONSOLE_LINES = "console.lines"  # bridge → "qs.console" group: {entries: [{seq, time, msg}]}
CONSOLE_STATE = "console.state"  # bridge → "qs.console" group: {connected, source, message, version}
# Every hub joins this group; the bridge announces a finished reload of the device registry.
REGISTRY_GROUP = "devices.registry"
DEVICES_RELOADED = "devices.reloaded"  # bridge → REGISTRY_GROUP: {devices: [names]}


class InterestMessage(TypedDict):
    type: str
    hub: str
    pvs: list[str]


class SetMessage(TypedDict):
    type: str
    hub: str
    request: str
    pv: str
    value: Any
    timeout: float


class ReplyMessage(TypedDict):
    type: str
    request: str
    outcome: dict[str, Any]


class ValueMessage(TypedDict):
    type: str
    pv: str
    value: str  # JSON text of the value
    count: int
    timestamp: float | None
    severity: int | None
    connected: bool
    read_access: bool
    write_access: bool


class MetaMessage(TypedDict):
    type: str
    pv: str
    meta: dict[str, Any]

# Every hub joins this group too: a user's login state or rights changed (logout,
# deactivation, token revoked); sockets of that user re-check at once instead of at their
# next periodic review.
ACCESS_GROUP = "access.changes"
ACCESS_CHANGED = "access.changed"  # web process → ACCESS_GROUP: {user_id}

# Live status (devices/status/node.py): every process (servers and bridges) joins this group
# on alias "default"; the asking process gathers the answers on its own status channel.
STATUS_GROUP = "ophydsite.status"
STATUS_REQUEST = "status.request"  # asker → STATUS_GROUP: {request, reply, max_names, max_pvs}
STATUS_REPORT = "status.report"  # process → asker's reply channel: {request, process, snapshot}
STATUS_CLOSE = "status.close"  # asker → STATUS_GROUP: {request, reply, process, socket, code, reason}
STATUS_CLOSED = "status.closed"  # owning process → reply channel: {request, process, outcome}
