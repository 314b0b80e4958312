"""HTTP routes."""

from django.contrib import admin
from django.urls import path

from devices import admin_views, api, views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/v1/health", views.health, name="health"),
    path("api/v1/load-devices", api.load_devices, name="load-devices"),
    path("admin/reload-devices/", admin_views.reload_devices, name="admin-reload-devices"),
    path("admin/", admin.site.urls),
]
