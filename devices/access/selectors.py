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
