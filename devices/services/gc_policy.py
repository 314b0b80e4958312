"""Garbage collection thresholds for server and bridge processes.

PV updates make short-lived objects by the ten thousand a second; Python's default thresholds
collect them young, often, and promote them into full collections of 50-110 ms (the p99 at
2,000 PVs x 10 Hz; measurements in docs/design.md, "The upstream path").
"""

from __future__ import annotations

import gc

# Young generation every 10,000 net allocations instead of 700; a full collection every 100
# middle ones instead of 10.
GC_THRESHOLDS = (10_000, 10, 100)


def gc_tune() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
