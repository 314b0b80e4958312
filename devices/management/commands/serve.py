"""`manage.py serve`: run the ASGI server (uvicorn), optionally with the demo IOC.

Environment variables win over arguments (OAS_HOST, OAS_PORT, OAS_STARTUP_DIR), as in
ophyd-websocket. Uvicorn is used rather than daphne because it applies TCP flow control
to WebSocket sends, which the per-client mailboxes rely on to bound slow clients
(daphne buffers without limit; see ARCHITECTURE.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devices.demo.process import DEMO_STARTUP, start_demo_ioc, start_demo_pva
from devices.services.gc_policy import gc_tune
from ophydsite.logging_setup import console_line
from ophydsite.startup_log import log_effective_settings
from ophydsite.ws_protocol import BoundedCloseWebSocketProtocol


def listen_settings(options: dict[str, Any], env: Mapping[str, str]) -> tuple[str, int, str | None]:
    """Host, port and startup path: OAS_* environment variables win over arguments."""
    host = env.get("OAS_HOST") or options["host"]
    raw_port = env.get("OAS_PORT") or options["port"]
    try:
        port = int(raw_port)
    except ValueError:
        raise CommandError(f"OAS_PORT: expected a port number, got {raw_port!r}") from None
    return host, port, env.get("OAS_STARTUP_DIR") or options["startup_dir"]


def use_startup_dir(startup: str) -> None:
    """Make ``startup`` (a .py file or folder) the one the bridge loads."""
    from django.conf import settings

    if not Path(startup).exists():
        raise CommandError(f"--startup-dir {startup}: no such file or folder")
    os.environ["OAS_STARTUP_DIR"] = str(Path(startup).resolve())
    # settings.OAS was read from the environment when Django started, before the argument.
    settings.OAS = replace(settings.OAS, startup_dir=os.environ["OAS_STARTUP_DIR"])


def say(stream: Any, text: str, command: str) -> None:
    """A line of the command's own output (printed whatever the log level): plain, or a JSON
    log line with OAS_LOG_FORMAT=json so the whole output stays one JSON object a line."""
    from django.conf import settings

    stream.write(console_line(text, f"ophydsite.{command}", settings.OAS.log_format))


class Command(BaseCommand):
    help = "Run the ophydsite server (ASGI, uvicorn)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="localhost")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--startup-dir", default=None,
                            help="A .py file or folder of them defining ophyd devices")
        parser.add_argument("--demo", action="store_true",
                            help="Also start a demo IOC on loopback (prefix DEMO:)")
        parser.add_argument("--no-migrate", action="store_true", help="Skip applying migrations")

    def handle(self, *args: Any, **options: Any) -> None:
        import uvicorn
        from django.conf import settings

        gc_tune()
        host, port, startup = listen_settings(options, os.environ)
        if options["demo"] and not startup:
            startup = str(DEMO_STARTUP)  # the demo IOC's devices, for the device socket
        if startup:
            use_startup_dir(startup)
        if not options["no_migrate"] and settings.OAS.bridge == "embedded":
            call_command("migrate", interactive=False, verbosity=0)  # with an external bridge, runbridge does
        helpers: list[subprocess.Popen[bytes]] = []
        if options["demo"]:
            if "OAS_ANONYMOUS_WRITES" not in os.environ and host in {"localhost", "127.0.0.1", "::1"}:
                # A newcomer's demo on loopback: the page and scripts may set values without a login.
                settings.OAS = replace(settings.OAS, anonymous_writes=True)
                say(self.stdout, "demo on loopback: anonymous clients may write (OAS_ANONYMOUS_WRITES)", "serve")
            helpers = start_demo_ioc(prefix="DEMO:")
            say(self.stdout, f"demo IOC serving DEMO:* on {os.environ['EPICS_CA_ADDR_LIST']}", "serve")
            helpers.append(start_demo_pva(prefix="DEMO:pva:"))
            say(self.stdout, f"demo PV Access server: pva://DEMO:pva:* (name server "
                             f"{os.environ['EPICS_PVA_NAME_SERVERS']})", "serve")
        BoundedCloseWebSocketProtocol.close_wait = settings.OAS.client_close_wait_s
        log_effective_settings("server", settings.OAS, {"OAS_HOST": host, "OAS_PORT": port})  # arguments too
        say(self.stdout, f"ophydsite on http://{host}:{port}/  (ws://{host}:{port}/api/v1/pv-socket and "
                         f"/api/v1/device-socket)", "serve")
        # JSON logs: uvicorn's own loggers go to the root handler instead of its text format.
        uvicorn_logs: dict[str, Any] = {} if settings.OAS.log_format == "plain" else {"log_config": None}
        try:
            uvicorn.run(
                "ophydsite.asgi:application",
                host=host,
                port=port,
                ws=BoundedCloseWebSocketProtocol,
                ws_max_size=16 * 1024 * 1024,
                ws_per_message_deflate=settings.OAS.ws_compression,
                ws_ping_interval=20.0,
                ws_ping_timeout=20.0,
                lifespan="on",  # the hub and embedded bridge start with the server (ophydsite/asgi.py)
                log_level=settings.OAS.log_level.lower(),
                **uvicorn_logs,
                timeout_graceful_shutdown=3,
                # A reverse proxy's X-Forwarded-For is believed only from these addresses, so
                # access rules and the audit see the real client behind a trusted proxy.
                proxy_headers=True,
                forwarded_allow_ips=",".join(settings.OAS.trusted_proxies) or "127.0.0.1",
            )
        finally:
            for proc in helpers:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        sys.exit(0)
