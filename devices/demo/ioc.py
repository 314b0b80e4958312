"""Demo Channel Access IOC for development and the system tests.

    python -m devices.demo.ioc --prefix DEMO: --host 127.0.0.1 --port 5064

Serves the PVs of ``devices.demo.ioc_pvs`` on one interface and one CA server
port (UDP searches and TCP), and prints ``READY <prefix> <port>`` on stdout
once it is serving. Beacons go to the CA repeater port (EPICS_CA_REPEATER_PORT)
on the serving host, as an EPICS base IOC's would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import caproto
from caproto.asyncio.server import Context
from caproto.server.common import DisconnectedCircuit

from .circuit import SturdyCircuit
from .ioc_pvs import DemoPVs

log = logging.getLogger(__name__)


def _record(name: str) -> str:
    """The record part of a channel name ("P:x.VAL$" -> "P:x")."""
    return caproto.parse_record_field(name).record.rstrip("$")


class DemoContext(Context):
    """A caproto server Context that counts open channels and can take PVs off the air."""

    def __init__(self, pvdb: dict[str, Any], interfaces: list[str]) -> None:
        super().__init__(pvdb, interfaces)
        self.unavailable: set[str] = set()

    def __getitem__(self, pvname: str) -> Any:
        # Search replies, channel creation, reads and writes all resolve names here,
        # so an unavailable PV is neither found nor reconnected.
        if _record(pvname) in self.unavailable:
            raise KeyError(pvname)
        return super().__getitem__(pvname)

    def channel_counts(self) -> dict[str, int]:
        """Open channels per channel name, summed over every client circuit."""
        return dict(Counter(
            chan.name
            for circuit in list(self.circuits) if circuit.connected
            for chan in circuit.circuit.channels_sid.values()
        ))

    async def set_available(self, pvname: str, available: bool) -> None:
        """Serve ``pvname`` again, or disconnect all its channels and stop answering for it."""
        if available:
            self.unavailable.discard(pvname)
            await self.send_beacon()
            return
        self.unavailable.add(pvname)
        for circuit in list(self.circuits):
            doomed = [c for c in circuit.circuit.channels_sid.values() if _record(c.name) == pvname]
            for chan in doomed:
                # caproto has no public API for a server-side channel disconnect.
                await circuit._cull_subscriptions(None, lambda sub, chan=chan: sub.channel is chan)
                try:
                    await circuit.send(chan.disconnect())
                except DisconnectedCircuit:
                    break

    async def send_beacon(self) -> None:
        """Send one extra beacon now, as a rebooted IOC would.

        libca (via the CA repeater) takes an early beacon as an anomaly and moves
        channels it has long searched for back to a ~5 s search period: after
        150 s offline, flaky came back in 4.5 s instead of 111 s.
        """
        for address, (interface, sock) in self.beacon_socks.items():
            beacon = caproto.Beacon(13, self.port, self.beacon_count, interface)
            try:
                await sock.send(self.broadcaster.send(beacon))
            except OSError:
                log.warning("extra beacon to %s:%d failed", *address)
        # Consecutive numbers: libca drops beacons whose number jumps by 2 or 3.
        self.beacon_count += 1


class _OnceForBeaconFailures(logging.Filter):
    """caproto logs a traceback per beacon when nothing listens on the repeater port; keep one line."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Failed to send beacon"):
            return True
        if self.seen:
            return False
        self.seen = True
        record.exc_info = record.exc_text = None
        return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="DEMO:")
    parser.add_argument("--host", default="127.0.0.1", help="the one interface to serve on")
    parser.add_argument("--port", type=int, default=5064, help="CA server port (UDP and TCP)")
    parser.add_argument("--bigwave-size", type=int, default=10000)
    parser.add_argument("--bigwave-rate", type=float, default=10.0, help="bigwave updates per second")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the starting process dies (test runs killed before teardown)")
    args = parser.parse_args(argv)
    if args.bigwave_size < 1 or not 0 < args.bigwave_rate <= 100:
        parser.error("--bigwave-size must be >= 1 and --bigwave-rate in (0, 100]")
    return args


def configure_beacons(host: str) -> None:
    """Beacons to this host's CA repeater port, as libca and rsrv would pick it.

    caproto defaults EPICS_CAS_BEACON_PORT to 5065 on its own instead of
    following EPICS_CA_REPEATER_PORT, and broadcasts to 255.255.255.255.
    """
    repeater_port = os.environ.get("EPICS_CA_REPEATER_PORT")
    if repeater_port:
        os.environ.setdefault("EPICS_CAS_BEACON_PORT", repeater_port)
    if host != "0.0.0.0":
        os.environ.setdefault("EPICS_CAS_BEACON_ADDR_LIST", host)
        os.environ.setdefault("EPICS_CAS_AUTO_BEACON_ADDR_LIST", "NO")


async def _exit_with_parent() -> None:
    """Exit once reparented: the test run that started us died without teardown."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    os._exit(0)


async def serve(args: argparse.Namespace) -> None:
    """Build the PVs and the server context, then serve until cancelled."""
    group = DemoPVs(prefix=args.prefix, bigwave_size=args.bigwave_size,
                    bigwave_rate=args.bigwave_rate)
    ctx = DemoContext(group.pvdb, [args.host])
    ctx.ca_server_port = args.port  # first TCP port tried, and the UDP search port
    group.registry = ctx

    await run_context(ctx, port=args.port, prefix=args.prefix, exit_with_parent=args.exit_with_parent)


def set_tcp_nodelay(sock: Any) -> None:
    """Send small writes at once on this TCP socket (no Nagle)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def accept_without_nagle(ctx: Any) -> None:
    """Make the caproto server ``ctx`` set TCP_NODELAY on every client socket it accepts.

    caproto binds its listening sockets with protocol 0, and asyncio sets TCP_NODELAY only on
    sockets whose protocol is IPPROTO_TCP, so caproto's never get it: Nagle then holds a small
    message (a put's monitor event after the put response) until the client's delayed ACK,
    ~40 ms: one set through the server took p50 52 ms, 22 ms with it (bench/README.md).
    caproto has no hook for accepted sockets; ``tcp_handler`` is the first code to see each.
    """
    handle = ctx.tcp_handler

    async def tcp_handler(client: Any, addr: Any) -> None:
        set_tcp_nodelay(client.writer.get_extra_info("socket"))
        await handle(client, addr)

    ctx.tcp_handler = tcp_handler


async def run_context(ctx: Any, *, port: int, prefix: str, exit_with_parent: bool) -> None:
    """Serve ``ctx`` until cancelled; print ``READY <prefix> <port>`` once serving (what test
    fixtures and ``serve --demo`` wait for), and end with the parent when asked to.

    Every caproto IOC of the project (demo, Area Detector test IOC, benchmark) runs here, so
    each gets TCP_NODELAY on its client sockets and circuits that survive a dropped channel.
    """
    accept_without_nagle(ctx)
    ctx.CircuitClass = SturdyCircuit

    async def announce(async_lib: Any) -> None:
        # caproto silently falls back to a random TCP port when the asked one is taken.
        if ctx.port != port:
            raise RuntimeError(f"TCP port {port} is in use (caproto took {ctx.port})")
        print(f"READY {prefix} {ctx.port}", flush=True)

    watcher = asyncio.create_task(_exit_with_parent()) if exit_with_parent else None
    try:
        await ctx.run(startup_hook=announce)
    finally:
        if watcher is not None:
            watcher.cancel()


def run_ioc(make_server: Callable[[], Coroutine[Any, Any, None]], host: str) -> None:
    """An IOC process's main: quiet logs, beacons on ``host``, serve until interrupted."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("caproto.ctx").addFilter(_OnceForBeaconFailures())
    configure_beacons(host)
    try:
        asyncio.run(make_server())
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_ioc(lambda: serve(args), args.host)


if __name__ == "__main__":
    main()
