"""Which Channel Access library pyepics loads, decided before anything imports ophyd.

pyepics' own libca (a separate EPICS build, with its own libComPYEPICS), in every process:
ophyd would point pyepics at epicscorelibs' libca whenever that is installed (p4p needs it) and
ophyd is imported first, so which one a process got depended on import order.

p4p and aioca (ophyd-async's CA layer) load epicscorelibs' EPICS 7 libraries beside it. p4p
loads them locally: no clash. aioca loads them RTLD_GLOBAL, so pyepics' libca must be loaded
before aioca is imported, or pyepics' symbols bind into epicscorelibs' libraries and the
process crashes (measured: docs/design.md). It is: every process attaches pyepics' CA context
(devices/sources/ca_context.py) before running startup files, and the ophyd-async runtime
attaches first thing on its thread. ``PYEPICS_LIBCA`` set in the environment still wins.
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
    # ophyd imports epicscorelibs' pyepics hook, which warns when epics.ca is already imported;
    # it leaves a PYEPICS_LIBCA already set alone, which is what is wanted here.
    warnings.filterwarnings("ignore", message="epicscorelibs.path.pyepics must be imported before epics.ca")
