"""API tokens: created once (the key is shown once), stored as a hash, revoked, expiring."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from .models import ApiToken, token_hash

KEY_PREFIX = "oas_"
LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is written at most once a minute


def api_token_create(*, user: AbstractBaseUser, label: str, expires_at: datetime | None = None,
                     created_by: AbstractBaseUser | None = None) -> tuple[ApiToken, str]:
    """A new token and its key. The key is not stored: the caller shows it once."""
    token = ApiToken(label=label, user=user, expires_at=expires_at)
    return token, api_token_issue(token=token, created_by=created_by)


def api_token_issue(*, token: ApiToken, created_by: AbstractBaseUser | None = None) -> str:
    """Give an unsaved token its key and save it; returns the key (to show once)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token.prefix, token.key_hash = key[:12], token_hash(key)
    token.created_by = created_by if created_by is not None and created_by.is_authenticated else None
    token.save()
    return key


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def api_token_authenticate(key: str) -> tuple[ApiToken | None, str]:
    """The token for ``key`` if it may be used now, else None and why (blocking: DB)."""
    if not key.startswith(KEY_PREFIX):
        return None, "not an ophydsite API token"
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(key)).first()
    if token is None:
        return None, "unknown API token"
    if token.revoked_at is not None:
        return None, "the API token was revoked"
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        return None, "the API token has expired"
    if not token.user.is_active:
        return None, "the token's user is deactivated"
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token, ""


def bearer_key(header: str) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` (or ``Token <key>``) header value."""
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() in {"bearer", "token"} and key.strip():
        return key.strip()
    return None
