"""`manage.py runbridge`: the bridge as its own process (scaled mode, REDIS_URL set).

``--shard I/N`` runs shard I of N bridges that split the PVs and devices by a hash of the
name (channel_layer/shards.py); N must equal the servers' OAS_BRIDGE_SHARDS."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devices.bridge.server import Bridge
from devices.channel_layer.shards import parse_shard
from devices.services.gc_policy import gc_tune

from .serve import use_startup_dir


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
            self.stderr.write("warning: REDIS_URL is not set; a separate bridge can only serve "
                              "workers through Redis. Use `manage.py serve` for one process.")
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
        self.stdout.write(f"bridge running{which}; Ctrl-C to stop")
        self.stdout.flush()  # the line tells scripts (and tests) that migrations are done
        try:
            asyncio.run(bridge.run())
        except KeyboardInterrupt:
            pass


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
