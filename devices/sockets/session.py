"""What every streaming socket shares: the mailbox, background requests, closing.

A session is the socket-free core of a consumer, so protocol behaviour is testable by
feeding it frames and reading what it queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from devices.access.guard import Guard
from devices.access.principal_cache import principal_forget
from devices.access.rules import Decision
from devices.channel_layer.jsonsafe import dumps
from devices.core.hub import Hub
from devices.core.mailbox import Mailbox
from devices.core.requests import Limits, ProtocolError, PvRequest
from devices.metrics import instruments as metrics
from devices.services.writes import OPEN, Interlock, Writer
from ophydsite.logging_setup import log_context
from ophydsite.settings.oas import OasSettings

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 100
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401  # logged out, deactivated, or the token was revoked

READ_WRITE = "rw"
READ_ONLY = "ro"  # the client asked for read-only (subscribeReadOnly)
READ_BY_POLICY = "rp"  # the client asked to write, the access rules allow reading only


def mode_under(asked: str, decision: Decision) -> str:
    """The mode a readable subscription asked for as ``asked`` has under ``decision``."""
    if asked == READ_ONLY:
        return READ_ONLY
    return READ_WRITE if decision.can_write else READ_BY_POLICY


class Session:
    """Base of the pv-socket, device-socket and /monitor sessions."""

    target_kind = "pv"  # what access rules call the socket's targets ("pv" or "device")
    target_field = "pv"  # the field naming a target in summaries and errors
    targets_noun = "PVs"

    def __init__(self, *, hub: Hub, settings: OasSettings, send: Callable[[str], Awaitable[None]],
                 close: Callable[[int], Awaitable[None]], guard: Guard, client: str = "",
                 interlock: Interlock | Callable[[], Interlock] = OPEN,
                 send_many: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        self.hub = hub
        self.guard = guard
        self.settings = settings
        self.client = client
        self.writer = Writer(hub=hub, guard=guard, settings=settings, interlock=interlock)
        self.limits = Limits(
            max_message_bytes=settings.max_message_bytes,
            max_names_per_request=settings.max_names_per_request,
            max_name_length=settings.max_name_length,
            set_timeout_max_s=settings.set_timeout_max_s,
        )
        self._close = close
        self.mailbox = Mailbox(send, max_replies=settings.max_pending_replies,
                               stall_timeout=settings.client_stall_timeout_s, on_stuck=self._stuck,
                               send_many=send_many)
        self._sender = asyncio.create_task(self.mailbox.run(), name="mailbox-sender")
        self._review_now = asyncio.Event()
        self._reviewer = asyncio.create_task(self._review_loop(), name="access-review")
        self.hub.listen_registry(self)  # for access changes (and, on the device socket, reloads)
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscribed: dict[str, Any] = {}
        self.ended = False
        self.batch_ms: int | float = 0  # the client's batching window (``options``); 0 = off

    def shown(self, name: str) -> str:
        """How the client spells a target in replies (the pv-socket keeps its own spellings)."""
        return name

    def status_targets(self) -> list[str]:
        """What the socket follows, for the status page (devices/status)."""
        return [self.shown(name) for name in list(self.subscribed)]

    # --- replies ----------------------------------------------------------------------------

    def reply(self, payload: dict[str, Any], request_id: Any = None) -> None:
        if request_id is not None:
            payload["id"] = request_id
        self.mailbox.put_reply(dumps(payload))

    def error(self, exc: ProtocolError) -> None:
        payload: dict[str, Any] = {"error": exc.message, "code": exc.code}
        if exc.action:
            payload["action"] = exc.action
        self.reply(payload, exc.request_id)

    def background(self, coro: Coroutine[Any, Any, None], request_id: Any = None) -> None:
        """Run a request that may wait (set, subscribeSafely) without holding the socket."""
        if len(self._tasks) >= MAX_IN_FLIGHT:
            coro.close()
            self.error(ProtocolError(
                "busy", f"{MAX_IN_FLIGHT} requests already in progress on this socket; wait for replies",
                request_id))
            return
        task = asyncio.create_task(self.guarded(coro, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def guarded(self, coro: Coroutine[Any, Any, None], request_id: Any) -> None:
        """Await a request; any failure becomes an error reply, never a closed socket."""
        try:
            await coro
        except ProtocolError as exc:
            self.error(exc)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - report to this client, keep the socket
            log.exception("request failed")
            self.error(ProtocolError("internal", "Internal error while handling the request; see server log",
                                     request_id))

    # --- delivery options -------------------------------------------------------------------

    async def _do_options(self, request: PvRequest) -> None:
        """``options`` (an addition): ``batch_ms`` > 0 sends this socket's stream data as one
        JSON-array frame per window; without it the options in force are reported."""
        if request.batch_ms is not None:
            self.batch_ms = request.batch_ms
            self.mailbox.set_batch(request.batch_ms / 1000)
        self.reply({"action": "options", "batch_ms": self.batch_ms}, request.request_id)

    # --- subscriptions under the access rules -------------------------------------------------

    def partition(self, request: PvRequest,
                  held: Mapping[str, Any]) -> tuple[list[str], list[str], list[dict[str, str]]]:
        """New names, names already subscribed (or ``held`` for subscribeSafely), and failures
        (invalid names, names past OAS_MAX_SUBSCRIPTIONS)."""
        fresh: list[str] = []
        already: list[str] = []
        failed = [{self.target_field: n, "error": why} for n, why in request.invalid]  # as spelled
        room = self.settings.max_subscriptions - len(self.subscribed) - len(held)
        for name in request.names:
            if name in self.subscribed or name in held:
                already.append(name)
            elif room <= 0:
                failed.append({self.target_field: self.shown(name), "error": (
                    f"Subscription limit of {self.settings.max_subscriptions} {self.targets_noun} per socket "
                    "reached (OAS_MAX_SUBSCRIPTIONS); unsubscribe from some first")})
            else:
                fresh.append(name)
                room -= 1
        return fresh, already, failed

    async def access_modes(self, names: list[str], asked: str, failed: list[dict[str, str]]) -> dict[str, str]:
        """The mode each name gets under the access rules; names not readable go to ``failed``."""
        modes: dict[str, str] = {}
        decisions = await self.guard.decide_many(names, self.target_kind)
        for name, decision in zip(names, decisions, strict=True):
            if decision.can_read:
                modes[name] = mode_under(asked, decision)
            else:
                failed.append({self.target_field: self.shown(name),
                               "error": f"No read access to {self.shown(name)}: {decision.reason}",
                               "code": "forbidden"})
        return modes

    # --- access over time ---------------------------------------------------------------------

    async def _review_loop(self) -> None:
        """Who the socket is and what the rules allow are checked again every few seconds: a
        user who logged out, was deactivated or whose token was revoked is disconnected; lost
        or gained rights change what each subscription is told (and may read)."""
        while not self.ended:
            try:
                await asyncio.wait_for(self._review_now.wait(), self.settings.access_review_s)
            except TimeoutError:
                pass
            self._review_now.clear()
            try:
                if not await self.guard.refresh():
                    log.info("closing %s: %s is no longer authenticated", self.client, self.guard.principal.describe())
                    await self.end()
                    await self._close(CLOSE_UNAUTHORIZED)
                    return
                await self.review_access()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - tried again at the next period
                log.exception("reviewing the access of %s failed", self.client)

    async def review_access(self) -> None:
        """Re-evaluate the rules for everything subscribed (each protocol its own)."""

    def access_changed(self, user_id: Any) -> None:
        """A user logged out, was changed or lost a token: re-check now if it is ours."""
        if self.guard.user_id is not None and user_id == self.guard.user_id:
            principal_forget(user_id)
            self._review_now.set()

    def registry_reloaded(self, devices: list[str]) -> None:
        """Only the device socket follows reloads."""

    # --- writes -------------------------------------------------------------------------------

    async def audited_set(self, *, target: str, kind: str, topic: str, signal: str, value: Any,
                          timeout: float) -> dict[str, Any]:
        """See writes.Writer.set: the same path for every protocol."""
        with log_context(pv=target):
            return await self.writer.set(target=target, kind=kind, topic=topic, signal=signal, value=value,
                                         timeout=timeout)

    async def record_refusal(self, *, target: str, kind: str, signal: str, value: Any, why: str) -> None:
        await self.writer.refuse(target=target, kind=kind, signal=signal, value=value, why=why)
        metrics.set_refused()

    # --- lifecycle --------------------------------------------------------------------------

    def _stuck(self, why: str) -> None:
        log.warning("closing stuck client %s: %s", self.client, why)
        metrics.client_stalled(self)
        asyncio.get_running_loop().create_task(self._close_stuck())

    async def _close_stuck(self) -> None:
        await self.end()
        try:
            await self._close(CLOSE_TRY_AGAIN_LATER)
        except Exception:  # noqa: BLE001 - the server aborted the connection: nothing to close
            log.info("stuck client %s dropped without a close frame", self.client)

    async def end(self) -> None:
        """Release everything the socket held; safe to call twice."""
        if self.ended:
            return
        self.ended = True
        self.hub.unlisten_registry(self)
        self.mailbox.close()
        for task in [*self._tasks, self._sender, self._reviewer]:
            task.cancel()
        names = list(self.subscribed)
        self.subscribed.clear()
        if names:
            await self.hub.unsubscribe(self, names)  # type: ignore[arg-type]
