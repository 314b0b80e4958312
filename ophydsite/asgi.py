"""The one wiring point: HTTP through Django, WebSockets through auth, origin check, routes."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ophydsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from ophydsite.origins import OriginCheckMiddleware  # noqa: E402
from ophydsite.routing import websocket_urlpatterns  # noqa: E402
from ophydsite.token_auth import TokenAuthMiddleware  # noqa: E402


async def lifespan(scope: dict, receive: Any, send: Any) -> None:
    """Start the hub (and the embedded bridge, with the startup files) when the server starts,
    not when the first client connects: a beamline screen's first subscribe then finds the
    bridge up, and devices connect before anyone asks. Stopped, channels released, at exit."""
    from devices.services.runtime import get_hub, shutdown

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await get_hub()
            except Exception as exc:  # noqa: BLE001 - reported to the server, which stops
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "lifespan": lifespan,
        # Session user, then an API token in place of it, then the Origin check (which lets
        # scripts without an Origin header in when they authenticate), then the routes.
        "websocket": AuthMiddlewareStack(TokenAuthMiddleware(OriginCheckMiddleware(URLRouter(websocket_urlpatterns)))),
    }
)
