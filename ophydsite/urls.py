"""HTTP routes."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from camera.api import router as camera_router
from devices.access.dry_run import access_dry_run
from devices.access.login import ThrottledLoginView
from devices.metrics.exposition import metrics_view
from devices.rest.api import api
from devices.rest.qserver_api import router as qserver_router
from devices.status import views as status_views
from devices.status.api import router as status_router
from devices.web import admin_views, views

api.add_router("/", camera_router)
api.add_router("/qserver", qserver_router)
api.add_router("/", status_router)

admin.site.site_header = "ophydsite"
admin.site.site_title = "ophydsite"
admin.site.index_title = "Devices, access, cameras"

urlpatterns = [
    path("", views.index, name="index"),
    path("api/v1/health", views.health, name="health"),
    path("livez", views.livez, name="livez"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("console/pvs", views.console_pvs, name="console-pvs"),
    path("console/devices", views.console_devices, name="console-devices"),
    path("console/camera", views.console_camera, name="console-camera"),
    path("console/queue-server", views.console_qs, name="console-qs"),
    path("console/audit", views.console_audit, name="console-audit"),
    path("api/v1/", api.urls),
    path("docs", RedirectView.as_view(url="/api/v1/docs", permanent=False), name="docs"),
    path("admin/reload-devices/", admin_views.reload_devices, name="admin-reload-devices"),
    path("admin/access-dry-run/", access_dry_run, name="admin-access-dry-run"),
    path("admin/status/", status_views.status_page, name="admin-status"),
    path("admin/status/close/", status_views.status_close, name="admin-status-close"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("admin/", admin.site.urls),
]
