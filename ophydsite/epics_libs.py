"""Which Channel Access library pyepics loads, decided before anything imports ophyd.

p4p needs epicscorelibs, and ophyd points pyepics at epicscorelibs' libca whenever that is
installed and ophyd is imported first; otherwise pyepics loads its own. Which one a process got
would depend on import order. Every server, bridge and test process uses pyepics' own libca,
the one the benchmarks were measured with. p4p's EPICS libraries load beside it under other
file names (libCom.so.7.0.10... against pyepics' libComPYEPICS.so), so the two do not clash.
``PYEPICS_LIBCA`` set in the environment still wins.
"""

from __future__ import annotations

import os
import warnings


def pyepics_libca() -> str:
    """The path of the libca that pyepics ships (no library is loaded here)."""
    from importlib.resources import files

    from epics.ca import clib_search_path

    return str(files("epics.clibs") / clib_search_path("ca"))


def pin_pyepics_libca() -> None:
    os.environ.setdefault("PYEPICS_LIBCA", pyepics_libca())
    # ophyd still imports epicscorelibs' pyepics hook, which warns that it comes too late: it
    # leaves a PYEPICS_LIBCA already set alone, which is what is wanted here.
    warnings.filterwarnings("ignore", message="epicscorelibs.path.pyepics must be imported before epics.ca")
