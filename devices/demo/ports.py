"""Choosing a loopback port for a Channel Access server (demo, test and benchmark IOCs).

A CA client must list an IOC's port (EPICS_CA_ADDR_LIST) before libca starts, so test runs
choose their IOCs' ports at import and start the IOCs minutes later. A port from the kernel's
ephemeral range (what ``bind(0)`` hands out) may meanwhile become the local port of any
outgoing connection on the machine, and the IOC then cannot bind it (seen: "TCP port ... is
in use" when two test runs shared the machine). Ports are therefore drawn at random below
that range, where the kernel never assigns one on its own.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000  # above the well-known and most registered service ports
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_LOW = 32768  # Linux's default


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` on ``host`` is free for both TCP and UDP right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            tcp.bind((host, port))
            udp.bind((host, port))
        except OSError:
            return False
    return True


def free_ca_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host`` (a CA server uses the same number for
    both), outside the ephemeral range where one exists below it."""
    high = ephemeral_low()
    if high - LOWEST >= 1000:
        draw = random.SystemRandom()
        for _ in range(200):
            port = draw.randrange(LOWEST, high)
            if is_free(port, host):
                return port
    for _ in range(50):  # no room below the ephemeral range: any port the kernel gives
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
        if is_free(port, host):
            return port
    raise RuntimeError("no port free for both TCP and UDP")
