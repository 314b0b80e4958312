from django.apps import AppConfig


class CameraConfig(AppConfig):
    name = "camera"
    verbose_name = "Cameras"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from devices.status.node import provide_cameras

        from .cameras import camera_stats

        provide_cameras(camera_stats)  # the status page's camera section (devices/status)
