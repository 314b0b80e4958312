"""WebSocket routes of the devices app."""

from django.urls import path

from .consumers import MonitorConsumer, PvSocketConsumer

websocket_urlpatterns = [
    path("api/v1/pv-socket", PvSocketConsumer.as_asgi()),
    path("monitor", MonitorConsumer.as_asgi()),
]
