"""The project's caproto IOCs send each CA message at once: TCP_NODELAY on accepted sockets.

Without it, Nagle's algorithm holds a small message (a put's monitor event after the put
response) until the client's delayed ACK, ~40 ms later (bench/README.md: one set through the
server, p50 52 ms without, 22 ms with). caproto binds its listening sockets with protocol 0, and asyncio
sets TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP, so caproto never gets it.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
import time
from collections.abc import Iterator

import psutil
import pytest
from caproto.asyncio.server import Context

from devices.demo.ioc import run_context
from tests.support.ioc import HOST, IocProcess, free_port

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]

SYS_PIDFD_OPEN = 434  # the same number on every Linux architecture since 5.3
SYS_PIDFD_GETFD = 438  # Linux 5.6


def _nodelay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def _socket_of(pid: int, fd: int) -> socket.socket:
    """A duplicate of another process's socket ``fd`` (pidfd_getfd; needs ptrace rights over
    ``pid``, which a parent has); skips the test where the kernel or permissions forbid it."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        pytest.skip(f"pidfd_open: {os.strerror(ctypes.get_errno())}")
    try:
        dup = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            err = ctypes.get_errno()
            if err in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                pytest.skip(f"pidfd_getfd: {os.strerror(err)}")
            raise OSError(err, os.strerror(err))
    finally:
        os.close(pidfd)
    return socket.socket(fileno=dup)


@pytest.fixture
def client_of(ioc: IocProcess) -> Iterator[socket.socket]:
    """A TCP connection to the demo IOC's CA port (a CA client's circuit, before any message)."""
    sock = socket.create_connection((HOST, ioc.port), timeout=5.0)
    yield sock
    sock.close()


def test_demo_ioc_sets_tcp_nodelay_on_the_socket_it_accepted(ioc: IocProcess,
                                                             client_of: socket.socket) -> None:
    assert ioc.proc is not None
    ours = client_of.getsockname()
    deadline = time.monotonic() + 5.0
    while True:  # the IOC sets the option right after accepting; allow it a moment
        conns = [c for c in psutil.Process(ioc.proc.pid).net_connections("tcp")
                 if c.raddr and (c.raddr.ip, c.raddr.port) == ours]
        if conns:
            with _socket_of(ioc.proc.pid, conns[0].fd) as server_side:
                if _nodelay(server_side) or time.monotonic() > deadline:
                    assert _nodelay(server_side), "the demo IOC's accepted socket has Nagle on"
                    return
        elif time.monotonic() > deadline:
            pytest.fail(f"the IOC (pid {ioc.proc.pid}) has no socket connected to {ours}")
        time.sleep(0.05)


async def test_run_context_sets_tcp_nodelay_for_any_caproto_context() -> None:
    """The Area Detector test IOC serves a plain caproto Context through run_context."""
    port = free_port()
    ctx = Context({}, [HOST])
    ctx.ca_server_port = port
    server = asyncio.create_task(run_context(ctx, port=port, prefix="NODELAY:",
                                             exit_with_parent=False))
    try:
        async with asyncio.timeout(10):
            while True:  # until the server listens
                try:
                    _, writer = await asyncio.open_connection(HOST, port)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            while not ctx.circuits:
                await asyncio.sleep(0.01)
        accepted = next(iter(ctx.circuits)).client.writer.get_extra_info("socket")
        assert _nodelay(accepted)
        writer.close()
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
