"""One socket's access: who it is, from where, what the rules say now, and the write audit.

Sessions ask the guard before every read subscription and every write; each set is recorded
before it is sent to the bridge (outcome "pending") and completed before the reply, so no
write can happen unrecorded: if the record cannot be written, the set is refused.
Rules and audit storage are pluggable (database in the server, in-process lists in unit
tests), like the channel layer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .rules import Decision, Policy, Principal, Rule, decide

log = logging.getLogger(__name__)

AUDIT_TIMEOUT_S = 5.0
TEXT_CAP = 2000  # characters of a value kept in the audit record


class RuleSource(Protocol):
    async def rules(self) -> tuple[Rule, ...]: ...


class AuditSink(Protocol):
    async def begin(self, record: dict[str, Any]) -> Any:
        """Store a pending record; return its key. Raises on failure."""

    async def finish(self, key: Any, changes: dict[str, Any]) -> None: ...


class AuditUnavailable(Exception):
    """The audit record could not be written: the set must not happen."""


@dataclass
class StaticRules:
    """A fixed rule list (unit tests, and a server run without database rules)."""

    fixed: tuple[Rule, ...] = ()

    async def rules(self) -> tuple[Rule, ...]:
        return self.fixed


@dataclass
class MemoryAudit:
    """Audit records kept in a list, for tests of the session logic without a database."""

    records: list[dict[str, Any]] = field(default_factory=list)

    async def begin(self, record: dict[str, Any]) -> int:
        self.records.append(dict(record))
        return len(self.records) - 1

    async def finish(self, key: int, changes: dict[str, Any]) -> None:
        self.records[key].update(changes)


@dataclass(frozen=True)
class SetRecord:
    key: Any
    started: float


class Guard:
    """Access decisions and audit records for one socket."""

    def __init__(self, *, principal: Principal, policy: Policy, rules: RuleSource, audit: AuditSink,
                 address: str | None = None, origin: str = "", path: str = "", user_id: int | None = None,
                 refresh: Callable[[], Awaitable[Principal | None]] | None = None) -> None:
        """``refresh``: who the socket is now (None: logged out, deactivated, token revoked)."""
        self.principal = principal
        self._refresh = refresh
        self.policy = policy
        self.address = address
        self.origin = origin
        self.path = path
        self.user_id = user_id
        self._rules = rules
        self._audit = audit

    async def refresh(self) -> bool:
        """Re-read who the socket is; False when it must be closed."""
        if self._refresh is None:
            return True
        principal = await self._refresh()
        if principal is None:
            return False
        self.principal = principal
        return True

    async def decide(self, name: str, kind: str) -> Decision:
        return decide(await self._rules.rules(), principal=self.principal, name=name, kind=kind,
                      address=self.address, policy=self.policy)

    async def decide_many(self, names: list[str], kind: str) -> list[Decision]:
        """Decisions for many names under one reading of the rules: a socket of 2,000 PVs
        reviewed with a task per name made a 0.4 s stall of the loop every review (py-spy)."""
        rules = await self._rules.rules()
        return [decide(rules, principal=self.principal, name=n, kind=kind, address=self.address,
                       policy=self.policy) for n in names]

    def _base(self, target: str, signal: str, value: Any, before: str | None, decision: Decision) -> dict[str, Any]:
        return {"username": self.principal.username or "", "user_id": self.user_id,
                "token": self.principal.token or "", "client": self.address or "", "origin": self.origin,
                "path": self.path, "target": target, "signal": signal, "value_before": _cap(before),
                "value_requested": _cap(_text(value)), "rule": decision.rule or ""}

    async def refused(self, *, target: str, signal: str, value: Any, before: str | None, decision: Decision,
                      outcome: str = "refused") -> None:
        """Record a write that was refused (by the policy, a limit, the interlock); best effort:
        the write does not happen anyway."""
        record = self._base(target, signal, value, before, decision) | {
            "outcome": outcome, "message": decision.reason, "duration_s": 0.0}
        try:
            await asyncio.wait_for(self._audit.begin(record), AUDIT_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - logged; a refusal needs no record to be safe
            log.exception("recording a refused write to %s failed", target)

    async def begin_set(self, *, target: str, signal: str, value: Any, before: str | None,
                        decision: Decision) -> SetRecord:
        """The pending record of an allowed write; AuditUnavailable if it cannot be stored."""
        record = self._base(target, signal, value, before, decision) | {"outcome": "pending"}
        try:
            key = await asyncio.wait_for(self._audit.begin(record), AUDIT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not write
            log.exception("the audit record of a write to %s could not be stored", target)
            raise AuditUnavailable(f"The write was not done: its audit record could not be stored ({exc!r})") from exc
        return SetRecord(key, time.monotonic())

    async def finish_set(self, record: SetRecord, *, outcome: str, message: str, after: str | None,
                         before: str | None = None) -> None:
        """Complete the record; ``before``: the value the bridge saw at the start, when the
        caller had none (a REST client holds no subscription)."""
        changes: dict[str, Any] = {"outcome": outcome, "message": message[:2000], "readback_after": _cap(after),
                                   "duration_s": round(time.monotonic() - record.started, 6)}
        if before is not None:
            changes["value_before"] = _cap(before)
        try:
            await asyncio.wait_for(self._audit.finish(record.key, changes), AUDIT_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the pending record stays: the write is still on record
            log.exception("completing the audit record %s failed", record.key)


def _text(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _cap(text: str | None) -> str:
    if text is None:
        return ""
    return text if len(text) <= TEXT_CAP else text[:TEXT_CAP] + "…"
