"""The open sockets of this process, so the status page can list and close them.

Consumers register a socket when they accept it and unregister it when it ends; nothing
here runs per message. The live counters (messages sent, values replaced) are read from
the session's mailbox when a snapshot is taken.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# The close code a socket closed by staff gets (the private 4000-4999 range, RFC 6455).
CLOSE_BY_STAFF = 4000
CLOSE_BY_STAFF_REASON = "closed by staff"

Closer = Callable[[int, str], Awaitable[None]]


@dataclass
class OpenSocket:
    """One accepted WebSocket: who, from where, which protocol, since when."""

    id: str
    path: str  # the consumer's path label: pv-socket, device-socket, monitor, camera-socket, ...
    protocol: str  # the metrics' protocol label: pv, device, monitor, camera, console
    user: str  # the principal as logs name it: anonymous, name, name (token label)
    client: str  # address:port as the server sees it
    session: Any  # its Session: subscriptions and mailbox are read from it
    close: Closer
    since: float = field(default_factory=time.time)  # wall clock, for people


class SocketRegistry:
    """Open sockets by id. Only touched on the event loop (accept, close, snapshot)."""

    def __init__(self) -> None:
        self._sockets: dict[str, OpenSocket] = {}

    def new_id(self, path: str) -> str:
        """A short id, unique in this process, that log records of the socket carry too."""
        while True:
            candidate = f"{path}-{secrets.token_hex(3)}"
            if candidate not in self._sockets:
                return candidate

    def add(self, socket: OpenSocket) -> None:
        self._sockets[socket.id] = socket

    def remove(self, socket_id: str) -> OpenSocket | None:
        return self._sockets.pop(socket_id, None)

    def get(self, socket_id: str) -> OpenSocket | None:
        return self._sockets.get(socket_id)

    def all(self) -> list[OpenSocket]:
        return list(self._sockets.values())

    def __len__(self) -> int:
        return len(self._sockets)


# The process's registry: every consumer of the process registers here.
SOCKETS = SocketRegistry()
