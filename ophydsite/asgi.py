"""The one wiring point: HTTP through Django, WebSockets through origin check, auth, routes."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ophydsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from ophydsite.origins import OriginCheckMiddleware  # noqa: E402
from ophydsite.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginCheckMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
