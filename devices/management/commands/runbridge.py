"""`manage.py runbridge`: the bridge as its own process (scaled mode, REDIS_URL set)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from devices.bridge.server import Bridge

from .serve import use_startup_dir


class Command(BaseCommand):
    help = "Run the bridge that owns every Channel Access channel (needs REDIS_URL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--demo", action="store_true", help="Also start the demo IOC")
        parser.add_argument("--startup-dir", default=None,
                            help="A .py file or folder of them defining ophyd devices (OAS_STARTUP_DIR wins)")
        parser.add_argument("--no-migrate", action="store_true", help="Skip applying migrations")

    def handle(self, *args: Any, **options: Any) -> None:
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
        if not options["no_migrate"]:
            # The bridge records load results; in the scaled mode it is the one process that
            # migrates (servers with an external bridge do not: parallel migrations collide).
            call_command("migrate", interactive=False, verbosity=0)
        os.environ.setdefault("EPICS_CA_MAX_ARRAY_BYTES", "20000000")
        bridge = Bridge(layer=get_channel_layer(), command_layer=get_channel_layer("bridge"),
                        settings=settings.OAS)
        self.stdout.write("bridge running; Ctrl-C to stop")
        self.stdout.flush()  # the line tells scripts (and tests) that migrations are done
        try:
            asyncio.run(bridge.run())
        except KeyboardInterrupt:
            pass
