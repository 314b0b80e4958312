"""All WebSocket routes; each app contributes its own list."""

from camera.routing import websocket_urlpatterns as camera_routes
from devices.routing import websocket_urlpatterns as devices_routes
from qsconsole.routing import websocket_urlpatterns as qsconsole_routes

websocket_urlpatterns = [*devices_routes, *qsconsole_routes, *camera_routes]
