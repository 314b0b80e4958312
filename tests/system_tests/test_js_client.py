"""The JavaScript client library's tests (tests/js/, Node's built-in runner) against a real
`serve --demo`: subscriptions, formatting with units and precision, sets resolved and
rejected by reply id, the device socket, and a server restart the client rides out."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None and not os.environ.get("CI"), reason="Node.js is not installed")
def test_js_client_library_against_a_running_server(tmp_path, ca_repeater):
    assert NODE is not None, "Node.js is needed for the JavaScript client tests"
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/js.sqlite3"}
    server = ServerProcess(env, log_path=tmp_path / "server.log")
    server.start_args = ["--demo"]
    server.start(timeout=60)
    servers = [server]
    flag = tmp_path / "restart-now"
    restarted = threading.Event()
    problems: list[BaseException] = []

    def restart_when_asked() -> None:
        try:
            restart()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            problems.append(exc)

    def restart() -> None:
        while not flag.exists():
            if node.poll() is not None:
                return
            threading.Event().wait(0.1)
        servers[-1].stop()  # the client sees the connection drop ...
        replacement = ServerProcess(env, port=servers[-1].port, log_path=tmp_path / "server2.log")
        replacement.start_args = ["--demo"]
        replacement.start(timeout=60)  # ... and the same address come back
        servers.append(replacement)
        restarted.set()

    try:
        node = subprocess.Popen(
            [NODE, "--experimental-websocket", "--test", str(ROOT / "tests" / "js")],
            cwd=ROOT, env={**os.environ, "OPHYDSITE_HTTP": server.http, "OPHYDSITE_RESTART": str(flag)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watcher = threading.Thread(target=restart_when_asked, daemon=True)
        watcher.start()
        text, _ = node.communicate(timeout=180)
        watcher.join(timeout=70)
        assert not problems, problems
        assert node.returncode == 0, text + servers[-1].output()
        assert "# fail 0" in text and "# skipped 0" in text, text
        assert restarted.is_set(), text
    finally:
        for each in servers:
            each.stop()
