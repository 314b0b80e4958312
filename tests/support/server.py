"""Starting a real `manage.py serve` (or `runbridge`) process for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devices.demo.ports import free_ca_port

PROJECT = Path(__file__).resolve().parents[2]


def free_tcp_port() -> int:
    """A loopback port for a server process, outside the ephemeral range (devices/demo/ports.py)."""
    return free_ca_port()


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
