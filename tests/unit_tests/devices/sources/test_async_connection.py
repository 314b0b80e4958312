"""Which ophyd-async signals get a connection watch, and how a watch reports changes (the
watches themselves, on real IOCs: tests/system_tests/test_async_devices.py)."""

from __future__ import annotations

import pytest

from devices.sources.async_connection import _Watch, channel_of, watch_connection


@pytest.mark.parametrize(("source", "channel"), [
    ("ca://X:ai", ("ca", "X:ai")),
    ("ca://X:mtr.RBV", ("ca", "X:mtr.RBV")),
    ("pva://X:image", ("pva", "X:image")),
    ("soft://x", None),
    ("mock+ca://X:ai", None),
    ("ca://", None),  # no PV: not known until connected
    ("", None),
])
def test_only_ca_and_pva_channels_are_watched(source, channel):
    assert channel_of(source) == channel


async def test_a_soft_signal_gets_no_watch():
    assert await watch_connection("soft://x", lambda connected: None) is None


def test_a_watch_reports_changes_only_and_nothing_once_closed():
    seen: list[bool] = []
    watch = _Watch("X:ai", seen.append)
    for connected in (True, False, False, True, True):
        watch._report(connected)
    watch.close()
    watch._report(False)
    assert seen == [False, True]


def test_a_raising_receiver_does_not_reach_the_client_library(caplog):
    def fails(connected: bool) -> None:
        raise RuntimeError("receiver broke")

    watch = _Watch("X:ai", fails)
    watch._report(False)  # logged, not raised (an exception would end the p4p subscription)
    watch._report(True)
    assert [r.message for r in caplog.records] == ["reporting the connection of X:ai"] * 2
