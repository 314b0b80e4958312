"""pyepics' clear_channel race: a channel created while another is being cleared keeps its
cache entries (devices/sources/pyepics_fix.py). Real libca; no IOC needed."""

from __future__ import annotations

from typing import Any

import pytest
from epics import ca

from devices.sources import pyepics_fix
from devices.sources.ca_context import attach


@pytest.fixture
def racing_create(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """libca's clear, followed at once by another thread's create (here: the same thread, at
    the worst moment), as the bridge's CA threads can interleave them."""
    attach()
    made: dict[str, Any] = {}
    real = ca.libca.ca_clear_channel

    def clear_then_create(chid: Any) -> int:
        status = real(chid)
        made["chid"] = ca.create_channel("FIXTEST:created", connect=False)
        return status

    monkeypatch.setattr(ca.libca, "ca_clear_channel", clear_then_create)
    return made


def test_the_fix_is_installed_when_a_thread_attaches():
    attach()
    assert ca.clear_channel is pyepics_fix.clear_channel


def test_a_channel_created_during_a_clear_keeps_its_cache_entries(racing_create):
    cleared = ca.create_channel("FIXTEST:cleared", connect=False)
    cleared_id = cleared.value
    ca.clear_channel(cleared)
    created = racing_create["chid"]
    assert created.value == cleared_id  # libca reused the id: the race's precondition
    entry = ca.get_cache("FIXTEST:created")
    assert entry is not None and entry.chid is not None and entry.chid.value == created.value
    assert ca._chid_cache[created.value] is entry
    assert ca.get_cache("FIXTEST:cleared") is None
    ca.clear_channel(created)
