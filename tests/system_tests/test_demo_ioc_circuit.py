"""The demo IOC keeps a client's circuit alive through the race of a server-side disconnect.

A raw caproto client on a socket of its own sends a request for a channel the
IOC has just taken off the air, before reading the disconnect, as libca does
when its request and the IOC's disconnect cross on the wire. caproto's server
alone ended that circuit's command task there and left the socket open, so
every later request of that client hung (devices/demo/circuit.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import caproto
import pytest

from tests.support.ioc import HOST, IocProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]


class RawClient:
    """One CA circuit driven by hand: requests go out only when the test says so."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.circuit = caproto.VirtualCircuit(caproto.CLIENT, (HOST, port), 0)
        self.send(caproto.VersionRequest(priority=0, version=13),
                  caproto.HostNameRequest("test"), caproto.ClientNameRequest("test"))

    def send(self, *commands: object) -> None:
        self.sock.sendall(b"".join(self.circuit.send(*commands)))

    def receive_until(self, match: Callable[[object], bool], timeout: float = 5.0) -> object:
        """Read and process server messages until one matches; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching reply from the IOC")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            assert data, "the IOC closed the circuit"
            commands, _ = self.circuit.recv(data)
            for command in commands:
                self.circuit.process_command(command)
                if match(command):
                    return command

    def connect(self, name: str) -> caproto.ClientChannel:
        chan = caproto.ClientChannel(name, self.circuit)
        self.send(chan.create())
        self.receive_until(lambda c: isinstance(c, caproto.CreateChanResponse) and c.cid == chan.cid)
        return chan

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(restartable_ioc: IocProcess) -> Iterator[RawClient]:
    raw = RawClient(restartable_ioc.port)
    yield raw
    raw.close()


def test_request_on_a_dropped_channel_leaves_the_circuit_working(
        restartable_ioc: IocProcess, client: RawClient) -> None:
    flaky = client.connect(restartable_ioc.pvname("flaky"))
    online = client.connect(restartable_ioc.pvname("flaky:online"))
    counter = client.connect(restartable_ioc.pvname("counter"))

    client.send(online.write([0], data_type=caproto.ChannelType.LONG, notify=True))
    deadline = time.monotonic() + 5
    while flaky.name in restartable_ioc.channel_counts():  # the IOC dropped flaky's channel
        assert time.monotonic() < deadline, "flaky was not taken off the air"
        time.sleep(0.05)

    # Sent before this client read the disconnect: the request names a sid the IOC forgot.
    client.send(flaky.read())
    read = counter.read()
    client.send(read)
    reply = client.receive_until(
        lambda c: isinstance(c, caproto.ReadNotifyResponse) and c.ioid == read.ioid)
    assert reply.data[0] >= 0
    assert flaky.states[caproto.CLIENT] is caproto.CLOSED  # the disconnect did arrive

    # The circuit still creates channels, and flaky comes back on it.
    write = online.write([1], data_type=caproto.ChannelType.LONG, notify=True)
    client.send(write)
    done = client.receive_until(
        lambda c: isinstance(c, caproto.WriteNotifyResponse) and c.ioid == write.ioid)
    assert done.status.name == "ECA_NORMAL"
    again = client.connect(restartable_ioc.pvname("flaky"))
    read = again.read()
    client.send(read)
    client.receive_until(lambda c: isinstance(c, caproto.ReadNotifyResponse) and c.ioid == read.ioid)

