"""Admin pages: cameras and pipelines are edited here (validated like the REST API);
backgrounds are only shown, since pipelines name them by id."""

from __future__ import annotations

from django.contrib import admin

from devices.admin_readonly import ReadOnlyAdmin

from .models import Background, Camera, Pipeline


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "array_pv", "updated")
    list_filter = ("source",)
    search_fields = ("name", "array_pv", "description")


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ("name", "camera", "background_id", "updated")
    list_filter = ("camera",)
    search_fields = ("name",)


@admin.register(Background)
class BackgroundAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("background_id", "camera", "created", "n_images", "width", "height")
    list_filter = ("camera",)
    exclude = ("data",)
    readonly_fields = ("background_id", "camera", "created", "n_images", "width", "height")
