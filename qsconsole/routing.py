"""WebSocket routes of the qsconsole app."""

from django.urls import path

from .consumers import QsConsoleConsumer

websocket_urlpatterns = [
    path("api/v1/qs-console-socket", QsConsoleConsumer.as_asgi()),
]
