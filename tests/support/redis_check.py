"""Whether the real Redis the scaled-mode tests use answers on 127.0.0.1:6379."""

from __future__ import annotations

import socket


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
