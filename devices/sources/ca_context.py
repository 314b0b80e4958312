"""The threads that make Channel Access calls, all in one libca context.

pyepics creates libca's context lazily and without a lock: channels opened from several
threads at once each created a context of their own, and libca crashed (SIGSEGV in
CAC-TCP-recv, seen by bench/loadgen.py subscribing 100 PVs to a fresh server). The context
is now created once, under a lock, and every worker thread attaches to it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from epics import ca

from . import pyepics_fix
from .batch_calls import set_epilogue

_lock = threading.Lock()
_created = False
_executor: ThreadPoolExecutor | None = None

CA_THREADS = 4


def attach() -> None:
    """Create the process's CA context if needed, and attach this thread to it."""
    global _created
    with _lock:
        if not _created:
            os.environ.setdefault("EPICS_CA_MAX_ARRAY_BYTES", "20000000")  # before libca starts
            ca.initialize_libca()
            pyepics_fix.install()
            _created = True
    ca.use_initial_context()


def ca_executor() -> ThreadPoolExecutor:
    """The pool the bridge uses for every call into pyepics (open, metadata, put, close)."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(CA_THREADS, thread_name_prefix="ca", initializer=attach)
            set_epilogue(_executor, ca.flush_io)  # batched subscriptions: one flush a batch
    return _executor
