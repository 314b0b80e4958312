"""Predicates and settings shared by the socket tests."""

from __future__ import annotations

from typing import Any

# Short grace periods and small limits so tests reach them quickly.
TEST_OAS: dict[str, Any] = {
    "release_grace_s": 1.0,
    "connect_timeout_s": 1.5,
    "lease_s": 6.0,
    "max_subscriptions": 50,
    "max_names_per_request": 40,
    "load_devices_on_start": False,  # tests reload explicitly, with database access granted
    "device_state_period_s": 0.3,
    # The protocol tests run in the drop-in compatibility mode (anonymous clients write, as
    # with ophyd-websocket); tests/system_tests/test_access.py checks the policy itself.
    "anonymous_writes": True,
    "access_review_s": 0.5,
    "write_rate_hz": 0.0,  # no per-user cap in the protocol tests (test_access.py sets one)
}


def value_of(pv: str):
    return lambda m: m.get("pv") == pv and m.get("sub_type") != "meta" and "value" in m


def meta_of(pv: str):
    return lambda m: m.get("pv") == pv and m.get("sub_type") == "meta"


def reply(request_id: Any):
    return lambda m: m.get("id") == request_id
