"""`manage.py runbridge`: the bridge as its own process (scaled mode, REDIS_URL set).

``--shard I/N`` runs shard I of N bridges that split the PVs and devices by a hash of the
name (channel_layer/shards.py); N must equal the servers' OAS_BRIDGE_SHARDS."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devices.bridge.heartbeat import heartbeat_run
from devices.bridge.server import Bridge
from devices.channel_layer.shards import parse_shard
from devices.metrics.exposition import serve_bridge_metrics
from devices.services.gc_policy import gc_tune
from ophydsite.startup_log import log_effective_settings

from .serve import say, use_startup_dir


class Command(BaseCommand):
    help = "Run the bridge that owns every Channel Access channel (needs REDIS_URL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--demo", action="store_true", help="Also start the demo IOC")
        parser.add_argument("--startup-dir", default=None,
                            help="A .py file or folder of them defining ophyd devices (OAS_STARTUP_DIR wins)")
        parser.add_argument("--no-migrate", action="store_true", help="Skip applying migrations")
        parser.add_argument("--shard", default=None, metavar="I/N",
                            help="Run shard I of N bridges (0 <= I < N; N = the servers' OAS_BRIDGE_SHARDS); "
                                 "only shard 0 migrates and reads the Queue Server console")

    def handle(self, *args: Any, **options: Any) -> None:
        gc_tune()
        shard = _shard(options["shard"], settings.OAS.bridge_shards)
        if not getattr(settings, "REDIS_URL", None):
            say(self.stderr, "warning: REDIS_URL is not set; a separate bridge can only serve "
                             "workers through Redis. Use `manage.py serve` for one process.", "runbridge")
        startup = os.environ.get("OAS_STARTUP_DIR") or options["startup_dir"]
        if options["demo"]:
            from devices.demo.process import DEMO_STARTUP, start_demo_ioc

            start_demo_ioc()
            startup = startup or str(DEMO_STARTUP)
        if startup:
            use_startup_dir(startup)
        if not options["no_migrate"] and shard[0] == 0:
            # The bridge records load results; in the scaled mode it is the one process that
            # migrates (servers with an external bridge do not: parallel migrations collide).
            call_command("migrate", interactive=False, verbosity=0)
        os.environ.setdefault("EPICS_CA_MAX_ARRAY_BYTES", "20000000")
        bridge = Bridge(layer=get_channel_layer(), command_layer=get_channel_layer("bridge"),
                        settings=settings.OAS, shard=shard)
        which = f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""
        if settings.OAS.bridge_metrics_port:  # shard I on the port + I, so shards can share a host
            self._serve_metrics(settings.OAS.bridge_metrics_port + shard[0])
        log_effective_settings(f"bridge shard {shard[0]}/{shard[1]}", settings.OAS)
        say(self.stdout, f"bridge running{which}; Ctrl-C to stop", "runbridge")
        self.stdout.flush()  # the line tells scripts (and tests) that migrations are done
        try:
            asyncio.run(_run(bridge, shard))
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass

    def _serve_metrics(self, port: int) -> None:
        """The bridge's /metrics on a thread of its own; a port in use stops the start, loudly."""
        try:
            serve_bridge_metrics(port, settings.OAS.metrics_allow)
        except OSError as exc:
            raise CommandError(f"OAS_BRIDGE_METRICS_PORT: cannot serve metrics on port {port}: {exc}") from None
        say(self.stdout, f"metrics on port {port} (/metrics, networks of OAS_METRICS_ALLOW)", "runbridge")


async def _run(bridge: Bridge, shard: tuple[int, int]) -> None:
    """The bridge, and with Redis its heartbeat beside it on the same loop (a loop that stops
    serving stops beating too), which the servers' /readyz reads.

    SIGTERM (systemd, docker, kill) stops it as Ctrl-C does: channels released, heartbeat
    removed, so servers see the bridge gone at once rather than when its heartbeat expires.
    Python's default for SIGTERM ends the process without running any of that. The heartbeat
    goes first; the rest gets STOP_GRACE_S, then the process exits anyway: a worker thread stuck
    in a CA call would otherwise hold the exit until systemd's SIGKILL (seen in a full run)."""
    stopping: list[asyncio.Task[Any]] = [t for t in [asyncio.current_task()] if t is not None]

    def on_sigterm() -> None:
        for task in reversed(stopping):  # the heartbeat (added last) before the bridge
            task.cancel()
        timer = threading.Timer(STOP_GRACE_S, _exit_now)
        timer.daemon = True
        timer.start()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        await bridge.run()
        return
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    prefix = str(settings.CHANNEL_LAYERS["bridge"].get("CONFIG", {}).get("prefix", "ophydsite"))
    beat = asyncio.create_task(heartbeat_run(
        redis, prefix=prefix, shard=shard, loaded=lambda: bridge.loaded,
        period_s=settings.OAS.bridge_heartbeat_s, ttl_s=settings.OAS.bridge_heartbeat_ttl_s), name="bridge-heartbeat")
    stopping.append(beat)
    try:
        await bridge.run()
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
        await redis.aclose()


STOP_GRACE_S = 5.0


def _exit_now() -> None:
    """The clean stop took longer than STOP_GRACE_S: leave without waiting for worker threads."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _shard(text: str | None, configured: int) -> tuple[int, int]:
    """``--shard I/N`` checked against OAS_BRIDGE_SHARDS: servers route by that count, so a
    bridge with another N would own names no server sends it."""
    if text is None:
        if configured > 1:
            raise CommandError(f"OAS_BRIDGE_SHARDS={configured}: give --shard I/{configured} (one bridge per shard)")
        return 0, 1
    try:
        index, count = parse_shard(text)
    except ValueError as exc:
        raise CommandError(f"--shard: {exc}") from None
    if count != configured:
        raise CommandError(f"--shard {text}: N must equal OAS_BRIDGE_SHARDS of the servers "
                           f"(here {configured}); set OAS_BRIDGE_SHARDS={count} for the bridges and servers")
    return index, count
