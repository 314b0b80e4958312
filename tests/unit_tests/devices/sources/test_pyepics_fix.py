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



def _run(script: str) -> list[str]:
    """A script in a process of its own: what these tests guard against is a crash of libca
    (SIGSEGV), which must fail one test, not end the test run."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[4]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"rc {done.returncode}\n{done.stderr[-3000:]}"
    return done.stdout.split()


TWICE = """
from epics import ca
from devices.sources.ca_context import attach
attach()
chid = ca.create_channel("FIXTEST:twice", connect=False)
ca.clear_channel(chid)
try:
    ca.clear_channel(chid)
except ca.ChannelAccessException as exc:
    print("refused" if "unknown channel id" in str(exc) else exc)
"""


def test_a_channel_cleared_twice_is_refused_not_freed_again():
    """A second free of the id is a use-after-free in libca (SIGSEGV with the unguarded fix)."""
    assert _run(TWICE) == ["refused"]


FINALIZE = """
from epics import ca
from devices.sources.ca_context import attach
attach()
ids = [ca.create_channel(f"FIXTEST:final{i}", connect=False).value for i in range(3)]
ca.finalize_libca()
print(ca.libca is ca._LIBCA_FINALIZED, all(i not in ca._chid_cache for i in ids))
print(ca.clear_channel(ids[0]))
"""


def test_finalize_libca_clears_every_channel_and_destroys_the_context():
    """pyepics' exit handler passes int ids; with the unguarded fix it stopped at the first one."""
    assert _run(FINALIZE) == ["True", "True", "None"]
