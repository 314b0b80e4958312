"""Startup files (every version kept) and the devices they define."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class StartupFile(models.Model):
    """A Python startup file kept in the database; edited by superusers in the admin."""

    class LoadStatus(models.TextChoices):
        NEVER = "never", "not loaded yet"
        OK = "ok", "loaded"
        ERROR = "error", "failed"

    name = models.CharField(max_length=200, unique=True, help_text="File name, e.g. 10_motors.py")
    content = models.TextField()
    enabled = models.BooleanField(default=True)
    order = models.IntegerField(default=100, help_text="Database files load in this order, then by name")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField(auto_now=True)
    last_load_status = models.CharField(max_length=10, choices=LoadStatus.choices, default=LoadStatus.NEVER)
    last_load_error = models.TextField(blank=True)
    last_loaded_at = models.DateTimeField(null=True, blank=True)
    devices = models.JSONField(default=list, blank=True, help_text="Devices it defined at the last load")

    class Meta:
        ordering = ["order", "name"]
        permissions = [("reload_devices", "Can reload devices from the startup files")]

    def __str__(self) -> str:
        return self.name


class StartupFileVersion(models.Model):
    """One saved text of a startup file; kept even when the file is deleted."""

    file = models.ForeignKey(StartupFile, null=True, on_delete=models.SET_NULL, related_name="versions")
    file_name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    content = models.TextField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["file_name", "-version"]
        constraints = [models.UniqueConstraint(fields=["file_name", "version"], name="one_number_per_version")]

    def __str__(self) -> str:
        return f"{self.file_name} v{self.version}"


class DeviceRecord(models.Model):
    """What the registry held at the last load: for the admin's device list."""

    name = models.CharField(max_length=200, unique=True)
    device_class = models.CharField(max_length=300)
    library = models.CharField(max_length=20, default="ophyd", help_text="ophyd or ophyd-async")
    components = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=500)
    origin_kind = models.CharField(max_length=10, default="folder", choices=[
        ("folder", "startup folder"), ("database", "database file"), ("qserver", "Queue Server")],
        verbose_name="from", help_text="Where its startup file is")
    qserver_allowed = models.BooleanField(null=True, verbose_name="Queue Server allows",
                                          help_text="Whether the Queue Server allows it (OAS_QSERVER_DEVICES)")
    connected = models.BooleanField(null=True, help_text="All signals connected (updated by the bridge)")
    state_at = models.DateTimeField(null=True, blank=True, help_text="When the connection state last changed")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "device"
        verbose_name_plural = "devices"

    def __str__(self) -> str:
        return self.name


class QserverRegistryState(models.Model):
    """The last time the bridge asked the Queue Server for its devices (one row, pk 1)."""

    mode = models.CharField(max_length=10, blank=True, help_text="OAS_QSERVER_DEVICES: only, merge or off")
    user_group = models.CharField(max_length=100, blank=True)
    ok = models.BooleanField(default=False, help_text="The last ask succeeded")
    error = models.TextField(blank=True, help_text="Why the last ask failed; the last good devices stay")
    how = models.CharField(max_length=300, blank=True)
    asked_at = models.DateTimeField(null=True, blank=True)
    last_good_at = models.DateTimeField(null=True, blank=True)
    allowed = models.JSONField(default=list, blank=True, help_text="Device names the Queue Server allows")
    not_allowed = models.JSONField(default=list, blank=True,
                                   help_text="Defined by its startup code but not allowed: not registered")
    clashes = models.JSONField(default=dict, blank=True, help_text="Name -> our startup file whose device lost")
    files = models.JSONField(default=list, blank=True, help_text="Its startup files at the last load")

    class Meta:
        verbose_name = "Queue Server device source"

    def __str__(self) -> str:
        return f"Queue Server devices ({self.mode or 'off'})"


class AllowedOrigin(models.Model):
    """A web origin whose pages may open WebSockets, on top of OAS_ALLOWED_ORIGINS."""

    origin = models.CharField(max_length=300, unique=True, help_text="Scheme, host and port, e.g. https://portal.lab:8443")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["origin"]

    def __str__(self) -> str:
        return self.origin

    def clean(self) -> None:
        from urllib.parse import urlsplit

        from django.core.exceptions import ValidationError

        self.origin = self.origin.strip().rstrip("/")
        parts = urlsplit(self.origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path or parts.query:
            raise ValidationError({"origin": "Give scheme, host and optional port only, e.g. https://portal.lab"})


from devices.access.models import AccessRule, ApiToken, AuditEntry  # noqa: E402,F401 - registered with this app
