"""The per-PV publish rate cap: a token bucket that forgives a source running at the cap.

A plain bucket (one token per period, at most RATE_BURST) never refills past its level
when the source updates at exactly the cap, as a 10 Hz IOC under the default 10 Hz cap
does: after one hiccup of the loop (a burst handled late) every later update of that PV
waited for a timer, for good (py-spy at 2,000 PVs: a timer per update, tens of ms of
latency each). Refilling RATE_SLACK faster lets the bucket recover within a few updates;
the cap then holds within that fraction.
"""

from __future__ import annotations

RATE_BURST = 2.0  # publishes a PV may bunch together after a quiet spell
RATE_SLACK = 0.1  # refill this much faster than the cap (recovers from a hiccup in ~10 updates)
_ONE = 1.0 - 1e-9  # a timer set for the moment its token is there finds it despite rounding


class RateCap:
    """One token per allowed publish, refilled at ``1 / interval`` (plus the slack) per second."""

    __slots__ = ("_tokens", "_at")

    def __init__(self, now: float) -> None:
        self._tokens = 1.0
        self._at = now

    def delay(self, now: float, interval: float) -> float:
        """0 to publish now (a token is spent), else the seconds until a token is there."""
        tokens = self._tokens + (now - self._at) * (1.0 + RATE_SLACK) / interval
        if tokens > RATE_BURST:
            tokens = RATE_BURST
        self._at = now
        if tokens >= _ONE:
            self._tokens = max(tokens - 1.0, 0.0)
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) * interval / (1.0 + RATE_SLACK)
