"""Kernel view of one loopback TCP connection, from /proc/net/tcp (Linux, IPv4).

Used to tell whether the server still holds a stalled client's connection and how many
bytes sit unsent in its send buffer, which the client cannot see without reading.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}


@dataclass(frozen=True)
class TcpEnd:
    """One end of a connection: its state and its kernel queues in bytes."""

    state: str
    tx_queue: int  # sent by the application, not yet acknowledged by the peer
    rx_queue: int  # received, not yet read by the application


def _hex_addr(port: int) -> str:
    return f"0100007F:{port:04X}"  # 127.0.0.1 in /proc/net/tcp's little-endian hex


def tcp_end(local_port: int, remote_port: int) -> TcpEnd | None:
    """The end of 127.0.0.1:local_port <-> 127.0.0.1:remote_port whose local side is given."""
    local, remote = _hex_addr(local_port), _hex_addr(remote_port)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == local and parts[2] == remote:
                tx, rx = parts[4].split(":")
                return TcpEnd(STATES.get(parts[3], parts[3]), int(tx, 16), int(rx, 16))
    return None
