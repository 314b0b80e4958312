"""Server and bridge processes collect garbage less often than Python's default."""

from __future__ import annotations

import gc

from devices.services.gc_policy import GC_THRESHOLDS, gc_tune


def test_gc_tune_raises_the_thresholds():
    before = gc.get_threshold()
    try:
        gc_tune()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0] and GC_THRESHOLDS[2] > 10  # fewer young and full collections
    finally:
        gc.set_threshold(*before)
