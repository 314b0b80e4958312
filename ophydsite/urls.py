"""HTTP routes."""

from django.contrib import admin
from django.urls import path

from devices import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/v1/health", views.health, name="health"),
    path("admin/", admin.site.urls),
]
