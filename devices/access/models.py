"""Access rules, API tokens and the write audit (imported by devices/models.py)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone


class AccessRule(models.Model):
    """Who may read or write which PVs or devices (see access/rules.py for the evaluation)."""

    class Syntax(models.TextChoices):
        GLOB = "glob", "glob (SR:* , BL?:m1)"
        REGEX = "regex", "regular expression"

    class Target(models.TextChoices):
        ANY = "any", "PVs and devices"
        PV = "pv", "PVs"
        DEVICE = "device", "devices"
        QSERVER = "qserver", "Queue Server actions (queue:*, run:*, environment:*)"

    class Level(models.IntegerChoices):
        NONE = 0, "none"
        READ = 1, "read"
        WRITE = 2, "write"

    name = models.CharField(max_length=100, unique=True)
    pattern = models.CharField(max_length=500, help_text="Matched against the whole name (anchored)")
    syntax = models.CharField(max_length=5, choices=Syntax.choices, default=Syntax.GLOB)
    target = models.CharField(max_length=10, choices=Target.choices, default=Target.ANY)
    level = models.IntegerField(choices=Level.choices)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    groups = models.ManyToManyField(Group, blank=True, related_name="+",
                                    help_text="No users and no groups: the rule applies to everybody, anonymous too")
    networks = models.CharField(max_length=1000, blank=True,
                                help_text="Client addresses it applies to, e.g. 10.1.0.0/16, 192.168.3.7 (empty: any)")
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=300, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("write_default", "Can write PVs and devices where no access rule decides")]

    def __str__(self) -> str:
        return self.name


def token_hash(key: str) -> str:
    """Tokens are stored as their SHA-256: random 256-bit keys need no slow hash."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A secret for scripts and services, sent as ``Authorization: Bearer <key>``."""

    label = models.CharField(max_length=100, help_text="What it is for, e.g. 'alignment script on bl-ws3'")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens",
                             help_text="The token acts as this user (groups, permissions, rules)")
    prefix = models.CharField(max_length=12, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    def __str__(self) -> str:
        return f"{self.label} ({self.prefix}…)"

    def usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now) and self.user.is_active


class AuditEntry(models.Model):
    """One set attempt, allowed or refused, on any path. Written before the reply; never edited."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "in progress (or the server stopped before it ended)"
        DONE = "done", "done"
        REFUSED = "refused", "refused by policy"
        OUT_OF_LIMITS = "out_of_limits", "out of limits"
        BAD_VALUE = "bad_value", "bad value"
        TIMEOUT = "timeout", "timeout"
        NOT_CONNECTED = "not_connected", "not connected"
        READ_ONLY = "read_only", "read-only"
        IOC_ERROR = "ioc_refused", "IOC error"
        QSERVER_REFUSED = "qserver_refused", "refused by the Queue Server"
        INTERLOCKED = "interlocked", "interlocked"
        OTHER = "other", "other error"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted")
    token = models.CharField(max_length=120, blank=True)
    client = models.CharField(max_length=100, blank=True)
    origin = models.CharField(max_length=300, blank=True)
    path = models.CharField(max_length=40, help_text="pv-socket, device-socket, monitor, rest")
    target = models.CharField(max_length=300, db_index=True)
    signal = models.CharField(max_length=300, blank=True)
    value_before = models.TextField(blank=True)
    value_requested = models.TextField()
    readback_after = models.TextField(blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    message = models.TextField(blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    rule = models.CharField(max_length=100, blank=True, help_text="The access rule that decided; empty: default")

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or 'anonymous'} {self.target} {self.outcome}"
