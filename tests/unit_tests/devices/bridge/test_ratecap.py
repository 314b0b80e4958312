"""The publish rate cap as plain arithmetic: recovery at the cap, the cap held, bursts."""

from __future__ import annotations

import random

import pytest

from devices.bridge import ratecap
from devices.bridge.ratecap import RATE_BURST, RATE_SLACK, RateCap


def deferred_after_hiccup(updates_after: int) -> list[bool]:
    """A 10 Hz source under a 10 Hz cap, handled with a few ms of jitter; at t = 1 s three
    updates are handled together (a loop that fell behind). As the bridge entry does, a
    deferred update sets a timer that publishes the latest value, and updates meanwhile wait
    for it. Which of the updates after the hiccup were deferred?"""
    jitter = random.Random(1)
    cap = RateCap(0.0)
    timer_at: float | None = None
    arrivals = [i * 0.1 + jitter.uniform(-0.004, 0.004) for i in range(1, 10)] + [1.0, 1.0, 1.0]
    arrivals += [1.0 + i * 0.1 + jitter.uniform(-0.004, 0.004) for i in range(1, updates_after + 1)]
    deferred = []
    for now in arrivals:
        if timer_at is not None and timer_at <= now:
            assert cap.delay(timer_at, 0.1) == 0.0  # the timer fires: its token is there
            timer_at = None
        if timer_at is not None:
            deferred.append(True)
            continue
        wait = cap.delay(now, 0.1)
        if wait > 0:
            timer_at = now + wait
        deferred.append(wait > 0)
    return deferred[12:]


def test_a_source_at_the_cap_is_not_deferred_for_long_after_a_hiccup():
    deferred = deferred_after_hiccup(60)
    assert not any(deferred[20:])  # back to publishing at once, every update


def test_without_the_slack_updates_stay_deferred(monkeypatch):
    monkeypatch.setattr(ratecap, "RATE_SLACK", 0.0)
    assert sum(deferred_after_hiccup(60)[20:]) >= 10  # what the slack is for


@pytest.mark.parametrize("interval", [0.1, 0.05])
def test_a_fast_source_is_held_to_the_cap(interval):
    cap = RateCap(0.0)
    published, next_allowed = 0, 0.0
    for i in range(10_000):  # 1 kHz for 10 s; a deferred update waits for its token
        now = i * 0.001
        if now < next_allowed:
            continue
        wait = cap.delay(now, interval)
        if wait == 0.0:
            published += 1
        else:
            next_allowed = now + wait
    most = 10.0 / interval * (1 + RATE_SLACK) + RATE_BURST
    assert 10.0 / interval <= published <= most


def test_after_a_quiet_spell_a_burst_goes_out_at_once():
    cap = RateCap(0.0)
    assert [cap.delay(5.0, 0.1) for _ in range(int(RATE_BURST))] == [0.0] * int(RATE_BURST)
    assert cap.delay(5.0, 0.1) > 0  # then the cap applies
