"""Start and stop the processes one benchmark scenario needs: CA repeater, IOC, server(s).

The IOC is bench/cioc.py (C records, EPICS base's CA server; ``ioc="c"``, the default) or
bench/ioc.py (caproto; ``ioc="caproto"``, the only one with the motor record).

Everything runs on 127.0.0.1 on free ports with a private CA repeater port and a private
SQLite database, so a benchmark never meets (or disturbs) another IOC, test or database on
the machine. Logs go to files in the run's folder; ``Stack.stop`` ends every process it
started, and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
from devices.demo.ports import free_ca_port  # noqa: E402
from devices.demo.procio import read_line  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"  # git-ignored
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
MARKER = "OAS_BENCH_RUN"  # set in every process a benchmark starts, to find leftovers
IOC_SCRIPTS = {"c": "cioc.py", "caproto": "ioc.py"}


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (CA uses both on the same number)."""
    return free_ca_port(HOST)


def ca_env(ioc_port: int, repeater_port: int) -> dict[str, str]:
    """CA client and server variables pointing at one local IOC and a private repeater."""
    return {
        "EPICS_CA_ADDR_LIST": f"{HOST}:{ioc_port}",
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_MAX_ARRAY_BYTES": "20000000",
        "EPICS_CA_REPEATER_PORT": str(repeater_port),
        "EPICS_CAS_BEACON_PORT": str(repeater_port),
        "EPICS_CAS_BEACON_ADDR_LIST": HOST,
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    }


def pva_env(server_port: int, broadcast_port: int) -> tuple[dict[str, str], dict[str, str]]:
    """PV Access variables for one local IOC on its own ports: (the IOC's, its clients').

    The server side listens on 127.0.0.1 only and sends beacons there alone; the client side
    searches 127.0.0.1 on the same broadcast port and nothing else, so the benchmark never
    meets another PVA server on the machine (nor the other way round).
    """
    server = {
        "EPICS_PVAS_SERVER_PORT": str(server_port),
        "EPICS_PVAS_BROADCAST_PORT": str(broadcast_port),
        "EPICS_PVAS_INTF_ADDR_LIST": HOST,
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_PVAS_BEACON_ADDR_LIST": HOST,
    }
    client = {
        "EPICS_PVA_ADDR_LIST": HOST,
        "EPICS_PVA_AUTO_ADDR_LIST": "NO",
        "EPICS_PVA_SERVER_PORT": str(server_port),
        "EPICS_PVA_BROADCAST_PORT": str(broadcast_port),
    }
    return server, client


@dataclass
class Proc:
    """One started subprocess and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


@dataclass
class Stack:
    """The processes of one scenario; use as a context manager so they always end."""

    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    server_ports: list[int] = field(default_factory=list)
    ioc_port: int = 0
    ioc: str = ""  # which IOC start_ca started: "c" or "caproto"
    pva_ports: tuple[int, int] | None = None  # (server, broadcast) when the IOC serves PVA too

    def __enter__(self) -> Stack:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- starting ---------------------------------------------------------------------------

    def spawn(self, name: str, cmd: list[str], env: dict[str, str],
              stdout_pipe: bool = False) -> Proc:
        """Start ``cmd`` in the project folder, logging to ``<run_dir>/<name>.log``; stopped
        with the stack."""
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env={**os.environ, **env, MARKER: str(self.run_dir)},
            stdout=subprocess.PIPE if stdout_pipe else log, stderr=log,
            start_new_session=True,  # Ctrl-C on the benchmark reaches us, and we stop them in order
        )
        proc = Proc(name, popen, log_path, log)
        self.procs.append(proc)
        return proc

    def start_ca(self, *, count: int, rate: float, big_size: int = 200000,
                 big_rate: float = 10.0, prefix: str = "BENCH:", motor: bool = False,
                 setpoints: int = 0, ioc: str = "c",
                 ioc_env: dict[str, str] | None = None, pva: bool = False,
                 ioc_args: list[str] | None = None) -> None:
        """A private CA repeater (so beacons have a listener) and the benchmark IOC ``ioc``
        (with ``motor``, also its motor record ``<prefix>mtr``, caproto only; ``setpoints``:
        PVs ``<prefix>sp<i>`` to write; ``ioc_env``: extra variables for the IOC alone, such as
        caproto's CAPROTO_SERVER_* tuning; ``pva``: the C IOC serves PV Access too (QSRV2) on
        free ports of its own, and the stack's environment points PVA clients at it alone;
        ``ioc_args``: more command-line options for the IOC script)."""
        if ioc not in IOC_SCRIPTS:
            raise ValueError(f"ioc must be one of {sorted(IOC_SCRIPTS)}, not {ioc!r}")
        if motor and ioc != "caproto":
            raise ValueError("the motor record is a caproto simulation: use ioc='caproto'")
        if pva and ioc != "c":
            raise ValueError("PV Access is served by the C IOC only: use ioc='c'")
        self.ioc = ioc
        repeater_port = free_port()
        self.ioc_port = free_port()
        self.env = ca_env(self.ioc_port, repeater_port)
        pvas_env: dict[str, str] = {}
        if pva:
            self.pva_ports = (free_port(), free_port())
            pvas_env, pva_client_env = pva_env(*self.pva_ports)
            self.env.update(pva_client_env)  # servers started later inherit it
        code = f"from caproto.sync.repeater import run; run(host={HOST!r})"
        self.spawn("repeater", [sys.executable, "-c", code], self.env)
        time.sleep(0.3)
        proc = self.spawn("ioc", [
            sys.executable, str(BENCH_DIR / IOC_SCRIPTS[ioc]), "--prefix", prefix,
            "--count", str(count), "--rate", f"{rate:g}", "--setpoints", str(setpoints),
            "--host", HOST, "--port", str(self.ioc_port),
            "--big-size", str(big_size), "--big-rate", str(big_rate),
            *(["--motor"] if motor else []), *(["--pva"] if pva else []), *(ioc_args or []),
        ], {**self.env, **pvas_env, **(ioc_env or {})}, stdout_pipe=True)
        line = read_line(proc.popen, START_TIMEOUT)
        if not line.startswith("READY"):
            raise RuntimeError(f"IOC did not come up (stdout {line!r}):\n{proc.log_text()}")

    def start_server(self, server_env: dict[str, str], name: str = "server") -> Proc:
        """``manage.py serve`` on a free port, with a private SQLite file; waits for /health."""
        port = free_port()
        env = {
            **self.env,
            "DATABASE_URL": f"sqlite:///{self.run_dir / 'bench.sqlite3'}",
            "OAS_LOG_LEVEL": "WARNING",
            "OAS_ANONYMOUS_WRITES": "true",  # the load clients and the control client do not log in
            "PYTHONUNBUFFERED": "1",
            **server_env,
        }
        proc = self.spawn(name, [
            sys.executable, "manage.py", "serve", "--host", HOST, "--port", str(port),
        ], env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{proc.log_text()}")
            try:
                health(port)
            except OSError:
                time.sleep(0.2)
                continue
            self.server_ports.append(port)
            return proc
        raise RuntimeError(f"{name} did not answer on port {port}:\n{proc.log_text()}")

    def write_startup(self, name: str, code: str) -> Path:
        """A startup folder in the run's folder holding one file; pass it as OAS_STARTUP_DIR."""
        folder = self.run_dir / "startup"
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(code)
        return folder

    def start_bridge(self, server_env: dict[str, str], shard: tuple[int, int] = (0, 1)) -> Proc:
        """``manage.py runbridge`` (scaled mode), or shard I of N (``--shard I/N``, named
        ``bridge`` for shard 0, ``bridgeI`` for the others); it has no health endpoint, so
        wait for the line it prints once migrated (shards: start shard 0 first)."""
        # The servers' database (start_server): the bridge is the process that migrates it.
        env = {**self.env, "DATABASE_URL": f"sqlite:///{self.run_dir / 'bench.sqlite3'}",
               "OAS_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **server_env}
        cmd = [sys.executable, "manage.py", "runbridge"]
        if shard[1] > 1:
            env["OAS_BRIDGE_SHARDS"] = str(shard[1])
            cmd += ["--shard", f"{shard[0]}/{shard[1]}"]
        proc = self.spawn("bridge" if shard[0] == 0 else f"bridge{shard[0]}", cmd, env)
        deadline = time.monotonic() + 60.0
        while "bridge running" not in proc.log_text() and proc.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        if not proc.alive():
            raise RuntimeError(f"bridge exited with {proc.popen.returncode}:\n{proc.log_text()}")
        return proc

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    # --- stopping ---------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """End servers first (they hold CA channels), then the IOC and the repeater.

        SIGTERM, then SIGKILL after a grace period; any child a process left behind is
        killed too. Returns a line per process that needed killing.
        """
        problems: list[str] = []
        for proc in reversed(self.procs):
            children = _children(proc.pid)
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    problems.append(f"{proc.name} (pid {proc.pid}) ignored SIGTERM for 10 s; killed")
                    proc.popen.kill()
                    proc.popen.wait(timeout=10)
            for child in children:
                if child.is_running():
                    problems.append(f"{proc.name} left child pid {child.pid} {child.name()}; killed")
                    child.kill()
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()
            proc.log.close()
        self.procs.clear()
        return problems


def machine_busy() -> float:
    """CPU seconds every core of the machine has been busy (not idle, not waiting on I/O)."""
    times = psutil.cpu_times()
    return float(sum(times)) - times.idle - getattr(times, "iowait", 0.0)


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def health(port: int, timeout: float = 2.0) -> dict[str, Any]:
    """The server's /api/v1/health JSON."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/api/v1/health", timeout=timeout) as resp:
        return dict(json.loads(resp.read()))


def read_channel_counts(env: dict[str, str], prefix: str = "BENCH:",
                        ioc: str = "caproto") -> dict[str, int]:
    """``<prefix>diag:channels`` read with caproto's sync client on its own circuit.

    The C IOC computes it when ``<prefix>diag:refresh`` is written, so that comes first.
    The count includes the reader's own channels to diag:*; callers look at the others.
    The CA variables are set in this process first: caproto reads them on each call.
    """
    from caproto.sync.client import read, write

    os.environ.update(env)
    # repeater=False: otherwise caproto spawns a repeater that outlives the benchmark.
    if ioc == "c":
        write(f"{prefix}diag:refresh", 1, notify=True, timeout=5.0, repeater=False)
    response = read(f"{prefix}diag:channels", timeout=5.0, repeater=False)
    return dict(json.loads(bytes(response.data).rstrip(b"\0").decode()))


def leftover_processes() -> list[str]:
    """Processes a benchmark started (marked by OAS_BENCH_RUN) that are still running."""
    found: list[str] = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            marked = MARKER in proc.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if marked and proc.pid != os.getpid():
            found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
    return found
