"""Running a Queue Server startup folder (an IPython profile) outside IPython and a RunEngine.

The RE Manager's startup code is written for IPython and for running plans: it may hold line
magics (``%matplotlib``), call ``get_ipython()``, and build ``RE = RunEngine(...)``. The
bridge only wants its devices, so magics are skipped and reported, ``get_ipython()`` answers
with a shell that does nothing, and ``RunEngine`` is, while the files run, a stand-in that
accepts configuration but never starts an event loop or runs a plan.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

_MAGIC = re.compile(r"^(\s*)([%!].*)$")


def without_magics(code: str) -> tuple[str, list[str]]:
    """``code`` with IPython magic and shell lines replaced by ``pass``; notes name each one.

    Code that compiles as it is stays untouched (a ``%`` at the start of a line inside a
    string is not a magic)."""
    try:
        compile(code, "<startup>", "exec")
        return code, []
    except SyntaxError:
        pass
    lines, notes = [], []
    for number, line in enumerate(code.splitlines(), start=1):
        match = _MAGIC.match(line)
        if match:
            lines.append(f"{match.group(1)}pass")
            notes.append(f"line {number}: IPython magic skipped: {match.group(2).strip()[:120]}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n", notes


class InertShell:
    """What ``get_ipython()`` returns: every call is recorded in ``notes`` and does nothing."""

    def __init__(self, notes: list[str]) -> None:
        self._notes = notes

    def __getattr__(self, name: str) -> Any:
        def skipped(*args: Any, **kwargs: Any) -> None:
            shown = ", ".join([repr(a)[:60] for a in args] + [f"{k}=..." for k in kwargs])
            self._notes.append(f"get_ipython().{name}({shown}) skipped (not IPython)")

        return skipped


class InertRunEngine:
    """Stands in for bluesky's RunEngine in startup code: keeps ``md``, subscriptions and
    settings as attributes, starts nothing, and refuses to run a plan."""

    def __init__(self, md: Any = None, *args: Any, **kwargs: Any) -> None:
        self.md = dict(md or {})
        self.preprocessors: list[Any] = []
        self.msg_hook = None
        self.state_hook = None
        self.waiting_hook = None
        self._tokens = 0

    def subscribe(self, *args: Any, **kwargs: Any) -> int:
        self._tokens += 1
        return self._tokens

    def unsubscribe(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ophydsite loads devices from the Queue Server's startup code and never runs plans; "
                           "the RE Manager does")

    def __getattr__(self, name: str) -> Any:  # register_command, install_suspender, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def inert_run_engine() -> Iterator[None]:
    """Within the block, ``bluesky.RunEngine`` (both import paths) is InertRunEngine."""
    try:
        import bluesky
        import bluesky.run_engine as run_engine
    except ImportError:
        yield
        return
    saved = bluesky.RunEngine, run_engine.RunEngine
    bluesky.RunEngine = run_engine.RunEngine = InertRunEngine  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        bluesky.RunEngine, run_engine.RunEngine = saved  # type: ignore[misc]
