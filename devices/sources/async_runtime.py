"""The one event loop, on a daemon thread of its own, where the bridge does all ophyd-async work.

ophyd-async objects are bound to the loop they connect and subscribe in, so every connect,
subscription, set and stop of one bridge process runs here, never on the bridge's own loop
(a slow device must not stall PV traffic). Blocking callers use ``run``; the bridge's loop uses
``submit`` and awaits the concurrent future with ``asyncio.wrap_future``.

Channel Access: ophyd-async reaches CA through aioca, which loads epicscorelibs' libca with
RTLD_GLOBAL. When that happens before pyepics has loaded its own libca (the one the server pins,
ophydsite/epics_libs.py), pyepics' libca binds into epicscorelibs' and the process crashes
(measured: SIGSEGV / "corrupted size vs. prev_size"). The runtime's thread therefore attaches to
pyepics' CA context first, which loads pyepics' libca before any ophyd-async CA call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .ca_context import attach
from .loop_watchdog import LoopWatchdog, watch

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT_S = 10.0
# A connect that ignores its own timeout is abandoned this much later.
CONNECT_GRACE_S = 1.0


class AsyncRuntime:
    """A daemon thread running one asyncio loop, started on first use."""

    def __init__(self, name: str = "ophyd-async") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: LoopWatchdog | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The runtime's loop, running (started now if needed)."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._start_locked()
            assert self._loop is not None
            return self._loop

    def _start_locked(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def main() -> None:
            attach()  # pyepics' libca before aioca's (module docstring)
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()

        thread = threading.Thread(target=main, name=self._name, daemon=True)
        thread.start()
        if not started.wait(30):
            raise RuntimeError(f"the {self._name} event loop did not start")
        self._loop, self._thread = loop, thread
        self._watchdog = watch(loop, thread, self._name)  # a blocked runtime looks like lost sets
        _offer_to_bluesky(loop)

    def in_runtime(self) -> bool:
        """Whether the caller runs on the runtime's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the runtime's loop; safe from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the runtime's loop and wait for its result (blocking callers only).

        Raises TimeoutError (after cancelling it) when it takes longer than ``timeout``."""
        if self.in_runtime():
            coro.close()
            raise RuntimeError("AsyncRuntime.run called on the runtime's own thread: it would deadlock")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("AsyncRuntime.run blocks: call it off an event loop (use submit there)")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"did not finish within {timeout:g} s") from None

    def call_soon(self, fn: Any, *args: Any) -> None:
        """``fn(*args)`` on the runtime's loop (for work that must happen there, not awaited)."""
        self.loop().call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        """Stop the loop and wait briefly for its thread (tests; the bridge keeps one for life)."""
        with self._lock:
            loop, thread, watchdog = self._loop, self._thread, self._watchdog
            self._loop = self._thread = self._watchdog = None
        if watchdog is not None:
            watchdog.stop()
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)


_runtime = AsyncRuntime()


def runtime() -> AsyncRuntime:
    """The process's one runtime."""
    return _runtime


def run(coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
    return _runtime.run(coro, timeout)


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    return _runtime.submit(coro)


def _offer_to_bluesky(loop: asyncio.AbstractEventLoop) -> None:
    """Make this loop bluesky's event loop when there is none, so ``init_devices()`` and
    ``call_in_bluesky_event_loop`` in startup files connect here rather than failing."""
    try:
        from bluesky.run_engine import get_bluesky_event_loop, set_bluesky_event_loop
    except ImportError:
        return
    current = get_bluesky_event_loop()
    if current is None or current.is_closed() or not current.is_running():
        set_bluesky_event_loop(loop)


# --- connecting devices ------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectResult:
    """How connecting one device went; ``error`` says why it failed."""

    name: str
    ok: bool
    error: str | None = None
    duration_s: float = 0.0


async def connect_device(name: str, device: Any, timeout: float) -> ConnectResult:
    """Connect one ophyd-async device (on the runtime's loop); never raises.

    A device whose connect ignores ``timeout`` (a hang in a custom ``connect``) is abandoned
    ``CONNECT_GRACE_S`` later: its task is cancelled but not awaited, so a connect that also
    ignores cancellation cannot hold up the others."""
    started = time.monotonic()
    task = asyncio.ensure_future(device.connect(timeout=timeout))
    done, _ = await asyncio.wait({task}, timeout=timeout + CONNECT_GRACE_S)
    elapsed = round(time.monotonic() - started, 6)
    if not done:
        task.cancel()
        task.add_done_callback(_swallow)
        return ConnectResult(name, False, f"{name} did not connect within {timeout:g} s", elapsed)
    error = task.exception() if not task.cancelled() else asyncio.CancelledError("connect was cancelled")
    if error is None:
        return ConnectResult(name, True, None, elapsed)
    return ConnectResult(name, False, describe_error(name, error), elapsed)


async def connect_devices(devices: Mapping[str, Any], timeout: float) -> dict[str, ConnectResult]:
    """Connect every device at once; one failing or hanging leaves the others alone."""
    results = await asyncio.gather(*(connect_device(n, d, timeout) for n, d in devices.items()))
    return {r.name: r for r in results}


def connect_devices_blocking(devices: Mapping[str, Any], *,
                             timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> dict[str, ConnectResult]:
    """``connect_devices`` on the runtime's loop, for the loader's thread."""
    if not devices:
        return {}
    return run(connect_devices(devices, timeout), timeout + 2 * CONNECT_GRACE_S + 5.0)


def describe_error(name: str, error: BaseException) -> str:
    """One readable text for a failed connect: ophyd-async's NotConnectedError already lists
    every signal that failed (``user_readback: NotConnectedError: ca://X.RBV``)."""
    text = str(error).strip()
    kind = type(error).__name__
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)) and not text:
        text = "timed out"
    return f"{name}: {kind}: {text}" if "\n" not in text else f"{name}: {kind}:\n{text}"


def _swallow(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned connect ended with %r", task.exception())
