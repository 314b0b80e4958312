"""Which Channel Access library pyepics loads, decided before anything imports ophyd.

One EPICS base per process: epicscorelibs' (EPICS 7), which p4p and aioca (ophyd-async's CA
layer) load too. pyepics' bundled libca is a separate EPICS 3.16 build: with it, aioca loaded
first binds pyepics' libca to epicscorelibs' symbols (it loads RTLD_GLOBAL) and the process
crashed (SIGSEGV, heap corruption; docs/design.md). ophyd makes the same choice when it is
imported first; pinning it here makes it independent of import order. ``PYEPICS_LIBCA`` set in
the environment still wins.
"""

from __future__ import annotations

import os
import warnings


def epics_libca() -> str:
    """The path of epicscorelibs' libca (no library is loaded here)."""
    from epicscorelibs.path import get_lib

    return str(get_lib("ca"))


def pin_epics_libca() -> None:
    os.environ.setdefault("PYEPICS_LIBCA", epics_libca())
    # ophyd imports epicscorelibs' pyepics hook, which warns when epics.ca is already imported;
    # it leaves a PYEPICS_LIBCA already set alone, which is what is wanted here.
    warnings.filterwarnings("ignore", message="epicscorelibs.path.pyepics must be imported before epics.ca")
