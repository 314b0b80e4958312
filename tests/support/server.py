"""Starting a real `manage.py serve` (or `runbridge`) process for end-to-end tests."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from devices.demo.ports import free_ca_port

PROJECT = Path(__file__).resolve().parents[2]


def free_tcp_port() -> int:
    """A loopback port for a server process, outside the ephemeral range (devices/demo/ports.py)."""
    return free_ca_port()


def migrated_sqlite() -> Path:
    """A SQLite database with every migration applied, made once per set of migrations.

    Each server process the tests start on a fresh SQLite file would otherwise run all the
    migrations itself (about a second each time, dozens of times a run); it gets a copy of this
    and its own ``migrate`` finds nothing to do. Keyed by the migration files' contents, so a
    new migration makes a new template."""
    digest = hashlib.sha256()
    for path in sorted(PROJECT.glob("*/migrations/*.py")):
        digest.update(path.relative_to(PROJECT).as_posix().encode())
        digest.update(path.read_bytes())
    template = Path(tempfile.gettempdir()) / f"ophydsite-migrated-{digest.hexdigest()[:16]}.sqlite3"
    if not template.exists():
        partial = template.with_suffix(f".{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{partial}"}
        env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=PROJECT, env=env,
                       check=True, capture_output=True)
        os.replace(partial, template)  # atomic: a concurrent maker's copy is the same
    return template


def seed_sqlite(url: str) -> None:
    """Copy the migrated template to the file of a ``sqlite:///`` URL that does not exist yet."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url[len("sqlite:///"):])
    if path.exists() or not path.parent.is_dir():
        return
    source = sqlite3.connect(migrated_sqlite())
    target = sqlite3.connect(path)
    try:
        source.backup(target)  # consistent whatever journal mode the template was written in
    finally:
        target.close()
        source.close()


class ServerProcess:
    """A listening ophydsite server in its own process, with its output kept for failures."""

    def __init__(self, env: dict[str, str], port: int | None = None, command: str = "serve",
                 log_path: Path | None = None) -> None:
        self.port = port or free_tcp_port()
        self.command = command
        self.env = {**os.environ, "OAS_LOG_LEVEL": "WARNING", **env}
        self.log_path = log_path or Path(f"/tmp/ophydsite-{command}-{self.port}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_args: list[str] = []  # extra arguments for the command, e.g. ["--demo"]

    def start(self, timeout: float = 30.0) -> ServerProcess:
        args = [sys.executable, "manage.py", self.command]
        if self.command == "serve":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        args += self.start_args
        seed_sqlite(self.env.get("DATABASE_URL", ""))
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, cwd=PROJECT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if self.command == "serve":
            self._wait_http(timeout)
        elif self.command == "runbridge":
            self._wait_output("bridge running", timeout)
        return self

    def _wait_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.command} did not print {text!r}:\n{self.output()}")
            time.sleep(0.1)

    def _wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.http}/api/v1/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not answer in {timeout} s:\n{self.output()}")

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
