"""A real Bluesky Queue Server for tests: RE Manager plus bluesky-httpserver on loopback.

RE Manager keeps its queue in Redis (the machine's server on 127.0.0.1:6379) under a key
prefix of its own per run, removed at stop; it publishes its console on a ZMQ PUB socket.
Nothing is written into the repository (plans/devices lists go to the run's folder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support.ioc import free_port

STARTUP = Path(__file__).resolve().parent / "qserver_startup"
BIN = Path(sys.executable).parent
API_KEY = "ophydsitetestkey"  # bluesky-httpserver takes alphanumeric keys only
READY_TIMEOUT_S = 60.0


class QueueServer:
    """Start, drive and stop one RE Manager and its HTTP server."""

    def __init__(self, folder: Path, redis_addr: str = "127.0.0.1:6379", startup: Path = STARTUP,
                 permissions: Path | None = None) -> None:
        self.folder = folder
        self.startup = startup
        self.permissions = permissions or STARTUP / "user_group_permissions.yaml"
        self.redis_addr = redis_addr
        self.control_port = free_port()
        self.info_port = free_port()
        self.http_port = free_port()
        self.prefix = f"ophydsite_test_{uuid.uuid4().hex[:8]}"
        self.manager: subprocess.Popen[bytes] | None = None
        self.http: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.http_port}/api"

    # --- processes ----------------------------------------------------------------------

    def start(self) -> QueueServer:
        self.start_manager()
        self.start_http()
        self.wait_for(lambda s: s.get("manager_state") == "idle", READY_TIMEOUT_S, "the Queue Server to start")
        return self

    def start_http(self) -> None:
        env = {**os.environ, "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": API_KEY,
               "QSERVER_ZMQ_CONTROL_ADDRESS": f"tcp://127.0.0.1:{self.control_port}",
               "QSERVER_ZMQ_INFO_ADDRESS": f"tcp://127.0.0.1:{self.info_port}"}
        self.http = subprocess.Popen(
            [str(BIN / "start-bluesky-httpserver"), "--host", "127.0.0.1", "--port", str(self.http_port)],
            env=env, stdout=open(self.folder / "http.log", "ab"), stderr=subprocess.STDOUT)

    def stop_http(self) -> None:
        _end(self.http)
        self.http = None

    def start_manager(self) -> None:
        self.manager = subprocess.Popen(
            [str(BIN / "start-re-manager"), "--startup-dir", str(self.startup),
             "--user-group-permissions", str(self.permissions),
             "--existing-plans-devices", str(self.folder / "existing_plans_and_devices.yaml"),
             "--update-existing-plans-devices", "NEVER",
             "--zmq-control-addr", f"tcp://127.0.0.1:{self.control_port}",
             "--zmq-info-addr", f"tcp://127.0.0.1:{self.info_port}",
             "--zmq-publish-console", "ON",
             "--redis-addr", self.redis_addr, "--redis-name-prefix", self.prefix],
            cwd=self.folder, stdout=open(self.folder / "manager.log", "ab"), stderr=subprocess.STDOUT)

    def stop_manager(self) -> None:
        _end(self.manager)
        self.manager = None

    def stop(self) -> None:
        _end(self.http)
        self.stop_manager()
        try:
            import redis

            host, port = self.redis_addr.split(":")
            client = redis.Redis(host=host, port=int(port))
            keys = list(client.scan_iter(f"{self.prefix}*"))
            if keys:
                client.delete(*keys)
        except Exception:  # noqa: BLE001 - leftovers under a unique prefix harm nobody
            pass

    def log_text(self) -> str:
        return "".join((self.folder / n).read_text(errors="replace")[-4000:]
                       for n in ("manager.log", "http.log") if (self.folder / n).exists())

    # --- the HTTP API -------------------------------------------------------------------

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.request(method, self.base + path, json=body, timeout=10,
                                    headers={"Authorization": f"ApiKey {API_KEY}"})
        response.raise_for_status()
        return response.json()

    def status(self) -> dict[str, Any]:
        return self.call("GET", "/status")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for proc in (self.http, self.manager):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"a Queue Server process exited ({proc.args[0]})\n{self.log_text()}")
            try:
                last = self.status()
                if predicate(last):
                    return last
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout:g} s for {what}; last status {last!r}\n{self.log_text()}")

    def open_environment(self) -> None:
        if self.status().get("worker_environment_exists"):
            return
        reply = self.call("POST", "/environment/open")
        assert reply["success"], reply
        self.wait_for(lambda s: s.get("worker_environment_exists") and s.get("re_state") == "idle", 60,
                      "the worker environment to open")

    def run_sleep_plan(self, duration: float = 30.0, steps: int = 30) -> None:
        """Queue the sleep plan and start it; returns when the RunEngine runs it."""
        self.open_environment()
        item = {"name": "sleep_plan", "kwargs": {"duration": duration, "steps": steps}, "item_type": "plan"}
        assert self.call("POST", "/queue/item/add", {"item": item})["success"]
        assert self.call("POST", "/queue/start")["success"]
        self.wait_for(lambda s: s.get("re_state") == "running" and s.get("manager_state") == "executing_queue",
                      20, "the plan to run")

    def pause(self) -> None:
        assert self.call("POST", "/re/pause", {"option": "immediate"})["success"]
        self.wait_for(lambda s: s.get("manager_state") == "paused", 20, "the plan to pause")

    def stop_plan(self) -> None:
        """Stop a paused plan and empty the queue: idle again."""
        assert self.call("POST", "/re/stop")["success"]
        self.call("POST", "/queue/clear")
        self.wait_for(lambda s: s.get("manager_state") == "idle" and s.get("re_state") == "idle", 20,
                      "the Queue Server to be idle")


def _end(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # RE Manager's watchdog ends its manager and worker
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
