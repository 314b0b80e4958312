"""The one wiring point: HTTP through Django, WebSockets through auth, origin check, routes."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ophydsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from ophydsite.origins import OriginCheckMiddleware  # noqa: E402
from ophydsite.routing import websocket_urlpatterns  # noqa: E402
from ophydsite.token_auth import TokenAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Session user, then an API token in place of it, then the Origin check (which lets
        # scripts without an Origin header in when they authenticate), then the routes.
        "websocket": AuthMiddlewareStack(TokenAuthMiddleware(OriginCheckMiddleware(URLRouter(websocket_urlpatterns)))),
    }
)
