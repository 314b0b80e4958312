"""Access rules, evaluated in the spirit of EPICS access security: pure, no database.

A rule names PVs or devices by an anchored glob or regex, the users and groups it applies
to (none listed: everybody, anonymous included), an optional set of client networks, and a
level. The access granted is the highest level of all matching rules; when no rule matches,
the default policy decides. Two settings cap everything: with ``auth_required`` anonymous
clients get nothing, and anonymous clients never write unless ``anonymous_writes`` is on.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from enum import IntEnum

from devices.channel_layer.pvnames import SEPARATOR, PvNameError, qualified, source_of

QSERVER = "qserver"  # the kind of a Queue Server action (name: the action, e.g. ``run:pause``)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Level(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (possibly through an API token) or anonymous."""

    username: str | None = None  # None: anonymous
    groups: frozenset[str] = frozenset()
    default_write: bool = False  # holds the permission to write where no rule decides
    token: str | None = None  # the token's label when the request came with one

    @property
    def anonymous(self) -> bool:
        return self.username is None

    def describe(self) -> str:
        if self.username is None:
            return "anonymous"
        return f"{self.username} (token {self.token})" if self.token else self.username


@dataclass(frozen=True)
class Policy:
    auth_required: bool = False
    anonymous_writes: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str
    level: Level
    syntax: str = "glob"  # "glob" | "regex"; both anchored (the whole name must match)
    target: str = "any"  # "pv" | "device" | "any" (PVs and devices) | "qserver" (queue actions)
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    _compiled: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        source = fnmatch.translate(self.pattern) if self.syntax == "glob" else self.pattern
        object.__setattr__(self, "_compiled", re.compile(source))

    def matches(self, *, name: str, kind: str, principal: Principal, address: str | None) -> bool:
        if self.target != kind and not (self.target == "any" and kind != QSERVER):
            return False  # "any" predates Queue Server actions: a broad PV rule must not grant them
        if self.users or self.groups:
            if principal.username is None:
                return False
            if principal.username not in self.users and not (self.groups & principal.groups):
                return False
        if self.networks:
            ip = _ip(address)
            if ip is None or not any(ip in net for net in self.networks if net.version == ip.version):
                return False
        assert self._compiled is not None
        return self._compiled.fullmatch(self._subject(name, kind)) is not None

    def _subject(self, name: str, kind: str) -> str:
        """What the pattern is matched against: a PV's bare name (``SR:*`` covers
        ``pva://SR:x``), or its ``scheme://name`` when the pattern names a scheme."""
        if kind != "pv":
            return name
        if SEPARATOR in self.pattern:
            return qualified(name)
        try:
            return source_of(name).name
        except PvNameError:  # not a topic: matched as spelled
            return name


@dataclass(frozen=True)
class Decision:
    level: Level
    rule: str | None  # the rule that decided; None: the default policy
    reason: str

    @property
    def can_read(self) -> bool:
        return self.level >= Level.READ

    @property
    def can_write(self) -> bool:
        return self.level >= Level.WRITE


def decide(rules: list[Rule] | tuple[Rule, ...], *, principal: Principal, name: str, kind: str,
           address: str | None, policy: Policy) -> Decision:
    """The access ``principal`` has to PV or device ``name`` (``kind`` "pv"/"device") from ``address``,
    or to Queue Server action ``name`` (kind "qserver": only a rule of that target, or the
    'write where no rule decides' permission, lets anyone act; anonymous clients get none)."""
    if principal.anonymous and policy.auth_required:
        return Decision(Level.NONE, None, "OAS_AUTH_REQUIRED: log in or send an API token")
    matching = [r for r in rules if r.matches(name=name, kind=kind, principal=principal, address=address)]
    if matching:
        best = max(matching, key=lambda r: r.level)  # the first of the highest, in rule order
        decision = Decision(best.level, best.name, f"rule {best.name!r} grants {best.level.name.lower()}")
    elif kind == QSERVER:
        level = Level.WRITE if principal.default_write else Level.NONE
        decision = Decision(level, None, "default policy for Queue Server actions" + (
            " (the user may write where no rule decides)" if principal.default_write else
            ": acting needs an access rule of target 'qserver'" + (
                " and a login" if principal.anonymous else
                " or the 'write where no rule decides' permission")))
    elif principal.anonymous:
        level = Level.WRITE if policy.anonymous_writes else Level.READ
        decision = Decision(level, None, "default policy for anonymous clients")
    else:
        level = Level.WRITE if principal.default_write else Level.READ
        decision = Decision(level, None, "default policy" + (
            " (the user may write where no rule decides)" if principal.default_write else
            " (writing needs a rule or the 'write where no rule decides' permission)"))
    if principal.anonymous and decision.level > Level.READ and not policy.anonymous_writes:
        return Decision(Level.READ, decision.rule, "anonymous clients may not write (OAS_ANONYMOUS_WRITES is off)")
    return decision


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma- or space-separated CIDR networks (``10.0.0.0/8, 192.168.1.7``); ValueError if bad."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    return tuple(ipaddress.ip_network(p, strict=False) for p in parts)


def check_pattern(pattern: str, syntax: str) -> str | None:
    """Why ``pattern`` is not usable, or None."""
    if not pattern:
        return "The pattern is empty"
    if syntax == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"Not a valid regular expression: {exc}"
    elif syntax != "glob":
        return "Syntax must be glob or regex"
    return None


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
