"""The one write path: policy, interlock, rate limit, coalescing, audit, then the bridge.

Every protocol that writes (pv-socket, device socket, REST) calls ``Writer.set``; so the
rules, the Queue Server interlock, the per-user limits and the audit record apply alike
whatever the client speaks, and the record is complete before the caller replies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from devices.access.guard import AuditUnavailable, Guard
from devices.access.rules import Decision
from devices.access.throttle import Coalescer, Place, RateLimiter
from devices.metrics import instruments as metrics
from ophydsite.settings.oas import OasSettings


class SetHub(Protocol):
    async def set(self, name: str, value: Any, timeout: float) -> dict[str, Any]: ...

    def current(self, name: str) -> list[Any]: ...


class Interlock(Protocol):
    async def refusal(self) -> str | None:
        """None when writes may go on, else why not (shown to the client and audited)."""


class _Open:
    async def refusal(self) -> str | None:
        return None


OPEN = _Open()


class _WriteLimits:
    """Shared by every client of the process: limits are per user, not per socket."""

    def __init__(self) -> None:
        self.coalescer = Coalescer()
        self._limiter: RateLimiter | None = None

    def limiter_for(self, settings: OasSettings) -> RateLimiter:
        limiter = self._limiter
        if limiter is None or limiter.rate != settings.write_rate_hz:
            limiter = self._limiter = RateLimiter(settings.write_rate_hz, max(settings.write_rate_hz * 2, 1.0))
        return limiter


WRITE_LIMITS = _WriteLimits()


def _with_reason(decision: Decision, reason: str) -> Decision:
    return type(decision)(decision.level, decision.rule, reason)


class Writer:
    """Writes of one client (a socket, or one REST request)."""

    def __init__(self, *, hub: SetHub, guard: Guard, settings: OasSettings,
                 interlock: Interlock | Callable[[], Interlock] = OPEN) -> None:
        self.hub = hub
        self.guard = guard
        self.settings = settings
        self._interlock = interlock

    def interlock(self) -> Interlock:
        return self._interlock() if callable(self._interlock) else self._interlock  # type: ignore[operator,return-value]

    def who(self) -> str:
        return self.guard.principal.username or f"anonymous@{self.guard.address}"

    async def set(self, *, target: str, kind: str, topic: str, signal: str, value: Any,
                  timeout: float) -> dict[str, Any]:
        """Check, record, set through the bridge, record the outcome.

        Returns the bridge's outcome, or a refusal in the same shape (``forbidden``,
        ``interlocked``, ``rate_limited``, ``superseded``, ``audit_unavailable``).
        """
        who = self.who()
        place = WRITE_LIMITS.coalescer.place((who, topic))  # first, before any await
        try:
            outcome = await self._set(place, who=who, target=target, kind=kind, topic=topic, signal=signal,
                                      value=value, timeout=timeout)
        finally:
            place.leave()
        metrics.set_stopped_early(outcome)  # every protocol and REST; the bridge's outcomes: the hub
        return outcome

    async def _set(self, place: Place, *, who: str, target: str, kind: str, topic: str, signal: str, value: Any,
                   timeout: float) -> dict[str, Any]:
        decision = await self.guard.decide(target, kind)
        before = self._current_text(topic)
        if not decision.can_write:
            await self.guard.refused(target=target, signal=signal, value=value, before=before, decision=decision)
            return {"status": "forbidden", "message": f"No write access to {target}: {decision.reason}"}
        blocked = await self.interlock().refusal()
        if blocked is not None:
            await self.guard.refused(target=target, signal=signal, value=value, before=before,
                                     decision=_with_reason(decision, blocked), outcome="interlocked")
            return {"status": "interlocked", "message": blocked}
        if not WRITE_LIMITS.limiter_for(self.settings).allow(who):
            await self.guard.refused(target=target, signal=signal, value=value, before=before,
                                     decision=_with_reason(decision, "per-user write rate limit"))
            return {"status": "rate_limited", "message": (
                f"More than {self.settings.write_rate_hz:g} writes a second from {who} (OAS_WRITE_RATE_HZ); "
                "slow down")}

        async def write() -> dict[str, Any]:
            try:
                record = await self.guard.begin_set(target=target, signal=signal, value=value, before=before,
                                                    decision=decision)
            except AuditUnavailable as exc:
                return {"status": "audit_unavailable", "message": str(exc)}
            outcome = await self.hub.set(topic, value, timeout)
            await self.guard.finish_set(record, outcome=str(outcome.get("status", "other")),
                                        message=str(outcome.get("message", "")), after=outcome.get("after"),
                                        before=None if before is not None else outcome.get("before"))
            return outcome

        outcome = await place.run(write)
        if outcome.get("status") == "superseded":
            await self.guard.refused(target=target, signal=signal, value=value, before=before,
                                     decision=_with_reason(decision, outcome["message"]))
        return outcome

    async def guarded_action(self, *, target: str, kind: str, value: Any,
                             act: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """A write that is not a set (a motor stop): policy and audit, no interlock or rate
        limit, since stopping motion must always be possible for those allowed to write."""
        decision = await self.guard.decide(target, kind)
        if not decision.can_write:
            await self.guard.refused(target=target, signal="", value=value, before=None, decision=decision)
            return {"status": "forbidden", "message": f"No write access to {target}: {decision.reason}"}
        try:
            record = await self.guard.begin_set(target=target, signal="", value=value, before=None, decision=decision)
        except AuditUnavailable as exc:
            return {"status": "audit_unavailable", "message": str(exc)}
        outcome = await act()
        await self.guard.finish_set(record, outcome=str(outcome.get("status")), message=str(outcome.get("message", "")),
                                    after=None)
        return outcome

    async def refuse(self, *, target: str, kind: str, signal: str, value: Any, why: str) -> None:
        """A set refused by the protocol itself (a read-only subscription): on record too."""
        decision = await self.guard.decide(target, kind)
        await self.guard.refused(target=target, signal=signal, value=value, before=None,
                                 decision=_with_reason(decision, why))

    def _current_text(self, topic: str) -> str | None:
        for update in self.hub.current(topic):
            if update.kind == "value":
                return str(update.msg.get("value"))
        return None
