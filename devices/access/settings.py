"""The access policy of the OAS_* settings, read at each use (tests and the admin change it)."""

from __future__ import annotations

from django.conf import settings

from .rules import Policy


def current_policy() -> Policy:
    return Policy(auth_required=settings.OAS.auth_required, anonymous_writes=settings.OAS.anonymous_writes)
