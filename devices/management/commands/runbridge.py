"""`manage.py runbridge`: the bridge as its own process (scaled mode, REDIS_URL set)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand

from devices.bridge.server import Bridge


class Command(BaseCommand):
    help = "Run the bridge that owns every Channel Access channel (needs REDIS_URL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--demo", action="store_true", help="Also start the demo IOC")

    def handle(self, *args: Any, **options: Any) -> None:
        if not getattr(settings, "REDIS_URL", None):
            self.stderr.write("warning: REDIS_URL is not set; a separate bridge can only serve "
                              "workers through Redis. Use `manage.py serve` for one process.")
        if options["demo"]:
            from devices.demo_process import start_demo_ioc

            start_demo_ioc()
        os.environ.setdefault("EPICS_CA_MAX_ARRAY_BYTES", "20000000")
        bridge = Bridge(layer=get_channel_layer(), command_layer=get_channel_layer("bridge"),
                        settings=settings.OAS)
        self.stdout.write("bridge running; Ctrl-C to stop")
        try:
            asyncio.run(bridge.run())
        except KeyboardInterrupt:
            pass
