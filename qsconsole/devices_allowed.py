"""Which devices the Queue Server allows a user group, asked through bluesky-httpserver.

bluesky-httpserver answers ``/api/devices/allowed`` for the group *it* gives the caller's API
key, so to honour ``OAS_QSERVER_USER_GROUP`` the list is computed the way the RE Manager
computes it: its existing devices filtered by its user-group permissions, with
bluesky-queueserver's own function. Without bluesky-queueserver installed the API key's group
is used and the answer says so. Blocking (HTTP): call off the event loop. Never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .qs_http import QsHttp

# Status fields whose change means the allowed or existing devices may have changed.
FOLLOWED = ("devices_allowed_uid", "devices_existing_uid", "worker_environment_exists")


@dataclass(frozen=True)
class QsDevices:
    """The answer: ``allowed`` top-level device names, or ``error`` when it could not be had.

    ``key`` identifies the Queue Server state the answer belongs to (FOLLOWED fields of its
    status, read before the lists), so a follower knows when to ask again.
    """

    group: str
    allowed: frozenset[str] | None
    key: tuple[Any, ...] | None
    error: str | None = None
    how: str = ""  # how the group's list was obtained, for the admin

    @property
    def ok(self) -> bool:
        return self.allowed is not None


def status_key(status: dict[str, Any]) -> tuple[Any, ...]:
    """The part of a Queue Server status that a device registry follows."""
    return tuple(status.get(name) for name in FOLLOWED)


def qserver_devices_allowed(client: QsHttp, group: str) -> QsDevices:
    """Ask the Queue Server which of its devices ``group`` may use."""
    status = client.call_blocking("GET", "/api/status")
    if not status.ok or status.body is None:
        return QsDevices(group, None, None, f"status: {status.error}")
    key = status_key(status.body)
    try:
        from bluesky_queueserver.manager.profile_ops import load_allowed_plans_and_devices
    except ImportError:
        return _for_api_key(client, group, key)
    existing = client.call_blocking("GET", "/api/devices/existing")
    if not existing.ok or existing.body is None:
        return QsDevices(group, None, key, f"existing devices: {existing.error}")
    permissions = client.call_blocking("GET", "/api/permissions/get")
    if not permissions.ok or permissions.body is None:
        return QsDevices(group, None, key, f"user group permissions: {permissions.error}")
    rules = permissions.body.get("user_group_permissions") or {}
    groups = sorted((rules.get("user_groups") or {}).keys()) if isinstance(rules, dict) else []
    if group not in groups:
        return QsDevices(group, None, key, f"user group {group!r} is not defined at the Queue Server "
                                           f"(its groups: {', '.join(groups) or 'none'}); check OAS_QSERVER_USER_GROUP")
    devices = existing.body.get("devices_existing") or {}
    _, allowed = load_allowed_plans_and_devices(existing_plans={}, existing_devices=devices,
                                                user_group_permissions=rules)
    return QsDevices(group, frozenset((allowed.get(group) or {}).keys()), key,
                     how=f"{len(devices)} existing devices filtered by the permissions of group {group!r}")


def _for_api_key(client: QsHttp, group: str, key: tuple[Any, ...]) -> QsDevices:
    reply = client.call_blocking("GET", "/api/devices/allowed")
    if not reply.ok or reply.body is None:
        return QsDevices(group, None, key, f"allowed devices: {reply.error}")
    names = frozenset((reply.body.get("devices_allowed") or {}).keys())
    return QsDevices(group, names, key, how="the group bluesky-httpserver gives this server's API key "
                                            "(bluesky-queueserver is not installed here to apply "
                                            "OAS_QSERVER_USER_GROUP)")
