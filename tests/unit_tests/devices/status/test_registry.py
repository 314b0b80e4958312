"""The per-process registry of open sockets."""

from __future__ import annotations

from devices.status.registry import OpenSocket, SocketRegistry


async def _close(code: int, reason: str) -> None:
    return None


def test_sockets_are_added_found_and_removed_by_id():
    registry = SocketRegistry()
    ids = {registry.new_id("pv-socket") for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("pv-socket-") for i in ids)
    sock = OpenSocket(id=registry.new_id("monitor"), path="monitor", protocol="monitor", user="anonymous",
                      client="10.0.0.1:5000", session=None, close=_close)
    registry.add(sock)
    assert registry.get(sock.id) is sock and registry.all() == [sock] and len(registry) == 1
    assert registry.remove(sock.id) is sock
    assert registry.remove(sock.id) is None  # twice is harmless (close by staff, then disconnect)
    assert registry.get(sock.id) is None and len(registry) == 0
