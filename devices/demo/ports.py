"""Choosing a loopback port for a Channel Access server."""

from __future__ import annotations

import socket


def free_ca_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host``: a CA server uses the same number for both."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no port free for both TCP and UDP")
