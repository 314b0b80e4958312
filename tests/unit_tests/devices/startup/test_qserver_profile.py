"""Running the Queue Server's startup code (an IPython profile) for its devices only."""

import threading

import bluesky

from devices.startup.loader import load_sources
from devices.startup.profile_compat import InertRunEngine, without_magics
from devices.startup.sources import StartupSource

PROFILE = """
%matplotlib qt
from bluesky import RunEngine
from ophyd import Signal
get_ipython().run_line_magic("load_ext", "autoreload")
RE = RunEngine({"beamline": "test"})
RE.subscribe(print)
RE.md["operator"] = "x"
sig = Signal(name="sig", value=1)
"""


def test_magics_are_skipped_and_reported_with_their_line():
    code, notes = without_magics("import os\n  %time x = 1\n!ls\n")
    assert code == "import os\n  pass\npass\n"
    assert notes == ["line 2: IPython magic skipped: %time x = 1", "line 3: IPython magic skipped: !ls"]


def test_code_that_compiles_is_untouched_even_with_a_percent_line_in_a_string():
    code = 's = """\n%not a magic\n"""\n'
    assert without_magics(code) == (code, [])


def test_a_profile_loads_its_devices_without_starting_a_run_engine():
    threads_before = {t.ident for t in threading.enumerate()}
    result = load_sources([StartupSource("00_profile.py", PROFILE, "/qs/00_profile.py", kind="qserver")],
                          timeout_s=10.0)
    file = result.files[0]
    assert file.ok, result.errors
    assert file.devices == ["sig"]
    assert file.notes[0] == "line 2: IPython magic skipped: %matplotlib qt"
    assert any("run_line_magic('load_ext', 'autoreload') skipped" in n for n in file.notes)
    assert any(n.startswith("RE = RunEngine(...) kept as configuration only") for n in file.notes)
    # bluesky's own RunEngine is back, and no event-loop thread of a RunEngine was started
    assert bluesky.RunEngine is not InertRunEngine
    new_threads = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    assert "bluesky-run-engine" not in new_threads  # what bluesky's RunEngine starts when built


def test_the_stand_in_refuses_to_run_a_plan():
    engine = InertRunEngine({"a": 1})
    assert engine.md == {"a": 1} and engine.subscribe(print) == 1
    engine.install_suspender(object())  # configuration calls are accepted
    try:
        engine([])
    except RuntimeError as exc:
        assert "never runs plans" in str(exc)
    else:
        raise AssertionError("an inert RunEngine ran a plan")


def test_the_same_profile_as_a_plain_startup_file_fails_on_the_magic():
    result = load_sources([StartupSource("00_profile.py", PROFILE, "00_profile.py")], timeout_s=10.0)
    assert not result.files[0].ok and "SyntaxError" in (result.files[0].error or "")
