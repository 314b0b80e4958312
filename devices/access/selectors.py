"""Reading access rules and principals from the database (blocking; call off the loop)."""

from __future__ import annotations

from typing import Any

from .models import AccessRule
from .rules import Level, Principal, Rule, parse_networks


def access_rules_load() -> tuple[Rule, ...]:
    """The enabled rules, as evaluable objects (a rule with bad networks matches no address)."""
    rules: list[Rule] = []
    for row in AccessRule.objects.filter(enabled=True).prefetch_related("users", "groups"):
        try:
            networks = parse_networks(row.networks)
        except ValueError:
            networks = (parse_networks("255.255.255.255/32")[0],)  # unusable: matches nobody real
        rules.append(Rule(
            name=row.name, pattern=row.pattern, level=Level(row.level), syntax=row.syntax, target=row.target,
            users=frozenset(u.username for u in row.users.all()),
            groups=frozenset(g.name for g in row.groups.all()), networks=networks))
    return tuple(rules)


def principal_for(user: Any, token_label: str | None = None) -> Principal:
    """The Principal of a Django user (AnonymousUser: anonymous)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Principal()
    groups = frozenset(user.groups.values_list("name", flat=True))
    return Principal(username=user.get_username(), groups=groups,
                     default_write=user.has_perm("devices.write_default"), token=token_label)


def principal_now(*, user_id: int, session_key: str | None, token_id: int | None,
                  token_label: str | None) -> Principal | None:
    """Who a socket opened as ``user_id`` is now; None once its login or token is gone."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from .models import ApiToken

    if token_id is not None:
        token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
        if token is None or not token.usable():
            return None
        return principal_for(token.user, token_label)
    if session_key is not None:
        session = Session.objects.filter(session_key=session_key, expire_date__gt=timezone.now()).first()
        if session is None or str(session.get_decoded().get("_auth_user_id")) != str(user_id):
            return None  # logged out (or the session expired)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return principal_for(user, token_label) if user is not None else None
