from django.apps import AppConfig


class CameraConfig(AppConfig):
    name = "camera"
    verbose_name = "Cameras"
    default_auto_field = "django.db.models.BigAutoField"
