"""A CA repeater for machines that have none (pyepics ships no caRepeater for Linux).

libca learns that an IOC (re)started from its beacons, which reach clients through the
repeater; without one it also prints that it could not spawn caRepeater. caproto's repeater
stands in. It exits with the process that started it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import caproto

_CODE = """
import os, threading, time
from caproto.sync.repeater import run
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
run(host=%r)
"""


def repeater_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Register as libca does and wait briefly for the repeater's confirmation."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(0.2)
        sock.sendto(bytes(caproto.RepeaterRegisterRequest(host)), (host, port))
        try:
            sock.recvfrom(1024)
        except OSError:  # timeout, or refused while nothing is bound
            return False
        return True


def start_repeater(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Start caproto's repeater on ``port`` (EPICS_CA_REPEATER_PORT must name it for the child)."""
    env = {**os.environ, "EPICS_CA_REPEATER_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-c", _CODE % host], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"CA repeater exited with {proc.returncode} (port {port} taken?)")
        if repeater_answers(port, host):
            return proc
    proc.kill()
    proc.wait()
    raise RuntimeError(f"CA repeater did not answer on port {port}")


def ensure_repeater(port: int, host: str = "127.0.0.1") -> subprocess.Popen[bytes] | None:
    """Start a repeater unless one already answers on ``port``; returns what it started."""
    if repeater_answers(port, host):
        return None
    return start_repeater(port, host)
