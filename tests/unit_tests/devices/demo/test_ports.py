"""Loopback ports for test and demo IOCs come from below the kernel's ephemeral range."""

from __future__ import annotations

import socket

from devices.demo.ports import LOWEST, ephemeral_low, free_ca_port, is_free


def test_ports_are_free_for_tcp_and_udp_and_below_the_ephemeral_range():
    low = ephemeral_low()
    ports = {free_ca_port() for _ in range(20)}
    assert len(ports) > 1  # drawn at random, not one fixed port
    for port in ports:
        assert LOWEST <= port < low
        assert is_free(port)


def test_a_port_taken_for_udp_only_is_not_free():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        assert not is_free(port)
