"""Server and bridge processes collect garbage less often than Python's default."""

from __future__ import annotations

import gc

from devices.services.runtime import GC_THRESHOLDS, tune_gc


def test_tune_gc_raises_the_thresholds():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0] and GC_THRESHOLDS[2] > 10  # fewer young and full collections
    finally:
        gc.set_threshold(*before)
