"""WebSocket routes of the camera app."""

from django.urls import path

from .consumers import CameraConsumer

websocket_urlpatterns = [
    path("api/v1/camera-socket", CameraConsumer.as_asgi()),
]
