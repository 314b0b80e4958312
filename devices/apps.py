from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Devices and access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .access import signals  # noqa: F401 - connects the access-change receivers
