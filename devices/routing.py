"""WebSocket routes of the devices app."""

from django.urls import path

from devices.sockets.consumers import DeviceSocketConsumer, MonitorConsumer, PvSocketConsumer

websocket_urlpatterns = [
    path("api/v1/pv-socket", PvSocketConsumer.as_asgi()),
    path("api/v1/device-socket", DeviceSocketConsumer.as_asgi()),
    path("monitor", MonitorConsumer.as_asgi()),
]
