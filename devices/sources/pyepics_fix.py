"""A fix for a race in pyepics' ``ca.clear_channel`` (pyepics 3.5), installed in place.

pyepics clears a channel in libca first and drops its own caches of it (by channel id and
by name) afterwards. libca reuses a freed channel's memory, so the id of the next channel
created is often the same number: when another thread creates a channel in between, the
late cleanup finds that new channel's cache entry under the reused id and deletes it. The
new channel then connects in libca but pyepics drops its connection events, for good.
Seen: a camera viewer's array PV never connected while another client's PVs were being
released (the bridge's CA threads create and clear channels concurrently).

The fixed version drops pyepics' caches first, then frees the channel, so no other channel
can hold the id while the caches still name it. Every process installs it when it attaches
to the CA context (ca_context.py), before its first clear.

It keeps the guards of pyepics' own (its ``withCHID`` decorator): an int id is accepted, a
channel pyepics no longer knows is refused with ChannelAccessException instead of freed a
second time, and after ``finalize_libca`` nothing is called. Without them a test process
died with SIGSEGV at exit: ``finalize_libca`` passes int ids, so it stopped at its first
clear (before destroying the context), and ophyd's finalizers then freed channels again.
Only the caller that removes the channel from pyepics' cache frees it, so two threads
clearing one channel cannot both free it.
"""

from __future__ import annotations

from typing import Any

from epics import ca, dbr


def clear_channel(chid: Any) -> int | None:
    """``epics.ca.clear_channel`` with pyepics' caches dropped before libca frees the id."""
    if ca.libca is ca._LIBCA_FINALIZED:
        return None  # Python is shutting down and libca is gone, as pyepics' own
    if isinstance(chid, int):
        chid = dbr.chid_t(chid)
    entry = ca._chid_cache.pop(chid.value, None)
    if entry is None:
        raise ca.ChannelAccessException(f"clear_channel: unknown channel id {chid.value} (cleared already?)")
    names = ca._cache[entry.context]
    if names.get(entry.pvname) is entry:
        del names[entry.pvname]
    with entry.lock:
        entry.chid = None
    return ca.libca.ca_clear_channel(chid)


def install() -> None:
    """Replace pyepics' ``ca.clear_channel`` (idempotent; callers look it up at call time)."""
    ca.clear_channel = clear_channel
