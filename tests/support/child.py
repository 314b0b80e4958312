"""The one way tests run a server of their own (IOCs, PVA servers) as a subprocess.

Each prints one line on stdout once it serves (``READY ...``); its stderr goes to a file,
not a pipe (a full pipe would block it), shown when it does not come up and with a failed
test (tests/conftest.py). ``stop`` kills it as a crash would, so tests see what clients see
when an IOC dies.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import IO

from devices.demo.procio import read_line

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0


class ChildProcess:
    """A test server subprocess; subclasses say how to start it and what its READY line is."""

    label = "test server"  # for error messages

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self, line: str) -> bool:
        """Whether ``line``, the first the process printed, says it serves as asked."""
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        """The process's environment; None: this process's own."""
        return None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Spawn the process and return once it is ready; raise with its stderr otherwise."""
        if self.running:
            raise RuntimeError(f"{self.label} is already running")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command(), cwd=PROJECT_ROOT, env=self.env(), stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        line = read_line(self.proc, timeout)
        if not self.ready(line):
            self.stop()
            raise RuntimeError(f"{self.label} did not come up (stdout {line!r}):\n{self.stderr_text()}")

    def stop(self) -> None:
        """SIGKILL the process (no clean shutdown, as when a server dies) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def stderr_text(self) -> str:
        """What the process (the last one started) wrote to stderr."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")
