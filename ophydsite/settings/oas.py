"""The typed OAS_* settings, read once from the environment.

Every tunable of the server lives here so the rest of the code reads
``settings.OAS.<field>`` instead of parsing environment variables itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


def _origins(text: str) -> tuple[str, ...]:
    return tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())


# Settings read from the variable names ophyd-websocket documents, not OAS_<FIELD>.
OTHER_NAMES = {
    "qserver_http_host": "QSERVER_HTTP_SERVER_HOST",
    "qserver_http_port": "QSERVER_HTTP_SERVER_PORT",
    "qserver_api_key": "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY",
    "zmq_host": "ZMQ_HOST",
    "zmq_port": "ZMQ_PORT",
}


@dataclass(frozen=True)
class OasSettings:
    """Server settings; each field maps to the environment variable ``OAS_<FIELD>`` (or the
    name in OTHER_NAMES)."""

    host: str = "localhost"
    port: int = 8001
    startup_dir: str | None = None
    allowed_origins: tuple[str, ...] = ()
    # WebSocket handshakes without an Origin header come from scripts, not browsers. Allowed
    # while there is no authentication (existing ophyd-websocket scripts send none).
    allow_no_origin: bool = True
    log_level: str = "INFO"
    # "plain" text lines, or "json": one JSON object a line with the socket, user and PV a
    # record concerns (ophydsite/logging_setup.py).
    log_format: str = "plain"
    # Reads need a login or an API token (anonymous clients get nothing).
    auth_required: bool = False
    # Anonymous clients may write (where rules allow). Only for trusted networks and drop-in
    # compatibility with ophyd-websocket clients, which cannot log in.
    anonymous_writes: bool = False
    # Open sockets re-check their user (logout, deactivation, revoked token) and the access
    # rules this often, seconds.
    access_review_s: float = 5.0
    # Writes a second one user may send (bursts of twice that); 0: no limit. Sets of one
    # target from one user are coalesced as well (latest wins while one is in progress).
    write_rate_hz: float = 20.0
    # Reverse proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips).
    trusted_proxies: tuple[str, ...] = ()
    # Every write path asks the Queue Server's HTTP API first and refuses while a plan runs
    # or is paused, or when it cannot be reached (fail closed).
    require_qserver: bool = False
    # The Queue Server HTTP API (bluesky-httpserver); ophyd-websocket's variable names.
    qserver_http_host: str = "localhost"
    qserver_http_port: int = 60610
    qserver_api_key: str = "test"
    # A Queue Server status answer is reused this long, so a burst of writes asks once.
    qserver_status_cache_s: float = 1.0
    qserver_timeout_s: float = 2.0
    # Queue actions (add a plan, pause, open the environment …): how long the Queue Server may
    # take to answer one; environment open/close and queue edits answer at once, not when done.
    qserver_action_timeout_s: float = 10.0
    # Devices from the Queue Server: "" (off), "only" (just the devices it allows) or "merge"
    # (the startup files' devices plus those; on a name clash the Queue Server's wins). The
    # bridge runs the RE Manager's startup code (OAS_QSERVER_STARTUP_DIR, on a shared
    # filesystem) and keeps the devices bluesky-httpserver allows OAS_QSERVER_USER_GROUP; it
    # asks the Queue Server's status this often (seconds) to follow changes.
    qserver_devices: str = ""
    qserver_startup_dir: str | None = None
    qserver_user_group: str = "primary"
    qserver_devices_poll_s: float = 2.0
    # The Queue Server's console publisher (start-re-manager --zmq-publish-console ON).
    zmq_host: str = "localhost"
    zmq_port: int = 60625
    # Console entries kept for replay; sent to a new console client; no heartbeat for this
    # long (while connected) counts as the Queue Server gone.
    qs_console_buffer: int = 5000
    qs_console_backlog: int = 200
    qs_console_heartbeat_s: float = 5.0
    # Camera socket: frames a second per viewer at most (a client may ask for fewer), the
    # longest side of a sent frame (larger ones are downscaled before encoding), JPEG
    # quality, and how long the image PV may take to connect before viewers are told.
    camera_max_fps: float = 30.0
    camera_max_size: int = 1024
    camera_quality: int = 85
    camera_connect_timeout_s: float = 5.0
    # "embedded": the bridge runs inside the server process (default without Redis).
    # "external": `manage.py runbridge` runs it (default when REDIS_URL is set).
    bridge: str = "embedded"
    # How many bridges (`runbridge --shard I/N`) split the PVs and devices between them by a
    # hash of the name; servers send each command to the owner. More than 1 needs "external".
    bridge_shards: int = 1
    # Each `runbridge` shard writes a heartbeat to Redis this often (seconds); it expires after
    # the TTL, and a server's /readyz fails while any shard's has expired.
    bridge_heartbeat_s: float = 2.0
    bridge_heartbeat_ttl_s: float = 10.0
    # The protocol of a PV named without ``ca://`` or ``pva://``: "ca" (Channel Access, as
    # ophyd-websocket) or "pva" (PV Access).
    default_protocol: str = "ca"
    # Publishing rate caps per PV (latest value wins in between).
    scalar_rate_hz: float = 10.0
    array_rate_hz: float = 10.0
    # Seconds a PV nobody subscribes to keeps its CA channel before release.
    release_grace_s: float = 10.0
    # Worker interest in a PV is a lease the bridge expires if not renewed.
    lease_s: float = 30.0
    # subscribeSafely waits this long for a connection before reporting failure.
    connect_timeout_s: float = 2.0
    # Default and maximum `timeout` of a set, seconds.
    set_timeout_s: float = 10.0
    set_timeout_max_s: float = 300.0
    # permessage-deflate compresses every message once per client (no sharing between
    # clients); measured 40 % fewer messages/s at saturation (bench/README.md), so it is off.
    ws_compression: bool = False
    # Startup files: longest accepted file and the time one file may take to load.
    startup_max_bytes: int = 262144
    startup_timeout_s: float = 30.0
    # How long the loader waits for the ophyd-async devices of a load to connect (all at
    # once); one that has not connected by then is left out and reported. At most the above.
    async_connect_timeout_s: float = 10.0
    load_devices_on_start: bool = True
    # How often the bridge refreshes the admin's device list (connection state), seconds.
    device_state_period_s: float = 2.0
    # Client limits.
    max_message_bytes: int = 65536
    max_subscriptions: int = 10000  # a beamline overview shows thousands of PVs on one socket
    max_names_per_request: int = 500
    max_name_length: int = 255
    # Replies (not PV data) a client may have queued before it counts as stuck.
    max_pending_replies: int = 1000
    # A client whose socket accepts nothing for this long is closed with 1013.
    client_stall_timeout_s: float = 30.0
    # How long the 1013 close frame may wait for such a client before the connection is cut.
    client_close_wait_s: float = 10.0
    # Networks (CIDR) whose clients may read /metrics, on the servers and the bridge's port;
    # others get 403. Loopback only by default: metrics stay off the public surface.
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1")
    # `runbridge` serves /metrics on this port (shard I of N on this port + I); 0: not served.
    bridge_metrics_port: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OasSettings:
        """Build settings from ``OAS_*`` variables; unknown types raise with the variable name."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in fields(cls):
            key = OTHER_NAMES.get(field.name, "OAS_" + field.name.upper())
            raw = env.get(key)
            if raw is None:
                continue
            try:
                values[field.name] = _convert(field.type, raw)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from exc
        if "bridge" not in values and env.get("REDIS_URL"):
            values["bridge"] = "external"
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.bridge not in {"embedded", "external"}:
            raise ValueError("OAS_BRIDGE: must be 'embedded' or 'external'")
        if settings.default_protocol not in {"ca", "pva"}:
            raise ValueError("OAS_DEFAULT_PROTOCOL: must be 'ca' or 'pva'")
        if settings.qserver_devices not in {"", "only", "merge"}:
            raise ValueError("OAS_QSERVER_DEVICES: must be 'only', 'merge' or empty (off)")
        if settings.qserver_devices and not settings.qserver_startup_dir:
            raise ValueError("OAS_QSERVER_DEVICES needs OAS_QSERVER_STARTUP_DIR: the RE Manager's startup folder")
        if settings.bridge_shards < 1:
            raise ValueError("OAS_BRIDGE_SHARDS: must be at least 1")
        if settings.bridge_shards > 1 and settings.bridge != "external":
            raise ValueError("OAS_BRIDGE_SHARDS: more than one bridge shard needs OAS_BRIDGE=external (and REDIS_URL)")
        return settings


def _convert(type_name: object, raw: str) -> object:
    name = str(type_name)
    if name == "int":
        return int(raw)
    if name == "float":
        return float(raw)
    if name == "bool":
        return _bool(raw)
    if name.startswith("tuple"):
        return _origins(raw)
    if name.startswith("str | None"):
        return raw or None
    return raw
