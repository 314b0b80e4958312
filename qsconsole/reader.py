"""Reading the Queue Server's ZMQ publisher on a thread of its own.

RE Manager publishes two-frame messages ``[topic, JSON]`` with ``{"time", "msg"}``: topic
``QS_Console`` carries console text (stdout chunks, a print is often the text and then
``"\\n"``), topic ``QS_Info`` a status dict about once a second — the Queue Server's
heartbeat, used here for liveness and never forwarded. ZMQ reconnects by itself when the
Queue Server comes back; its socket monitor tells when the TCP connection comes and goes.
The thread only decodes and hands over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

CONSOLE_TOPIC = b"QS_Console"
INFO_TOPIC = b"QS_Info"
POLL_MS = 200

# (kind, payload): ("line", (time, text)), ("heartbeat", None), ("tcp", connected: bool)
Event = tuple[str, Any]


def decode(frames: list[bytes]) -> Event | None:
    """One ZMQ message as an event; None for what is not console output or heartbeat."""
    if len(frames) == 2:
        topic, payload = frames
    elif len(frames) == 1:  # a publisher without topic frames: the JSON alone
        topic, payload = CONSOLE_TOPIC, frames[0]
    else:
        return None
    if topic == INFO_TOPIC:
        return ("heartbeat", None)
    if topic != CONSOLE_TOPIC:
        return None
    try:
        body = json.loads(payload.decode("utf-8", errors="replace"))
    except ValueError:
        return ("line", (None, payload.decode("utf-8", errors="replace")))
    if not isinstance(body, dict):
        return ("line", (None, str(body)))
    msg = body.get("msg")
    stamp = body.get("time")
    return ("line", (float(stamp) if isinstance(stamp, int | float) else None,
                     msg if isinstance(msg, str) else json.dumps(msg)))


class ZmqConsoleReader:
    """A SUB socket on ``address`` read by one daemon thread until ``stop()``."""

    def __init__(self, address: str, emit: Callable[[list[Event]], None]) -> None:
        """``emit`` gets the events of each read, in order (one hand-over per batch)."""
        self.address = address
        self._emit = emit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qs-console-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.RECONNECT_IVL, 500)
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
        sub.setsockopt(zmq.RCVHWM, 10000)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in (CONSOLE_TOPIC, INFO_TOPIC):
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        monitor = sub.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        try:
            sub.connect(self.address)
            poller = zmq.Poller()
            poller.register(sub, zmq.POLLIN)
            poller.register(monitor, zmq.POLLIN)
            while not self._stop.is_set():
                ready = dict(poller.poll(POLL_MS))
                if monitor in ready:
                    self._monitor_event(monitor)
                if sub in ready:
                    self._drain(sub)
        except Exception:  # noqa: BLE001 - logged; the relay reports the console as disconnected
            log.exception("the Queue Server console reader stopped")
            self._emit([("tcp", False)])
        finally:
            sub.disable_monitor()
            monitor.close(linger=0)
            sub.close(linger=0)
            context.term()

    def _monitor_event(self, monitor: zmq.Socket[bytes]) -> None:
        event = recv_monitor_message(monitor)
        if event["event"] == zmq.EVENT_CONNECTED:
            self._emit([("tcp", True)])
        elif event["event"] == zmq.EVENT_DISCONNECTED:
            self._emit([("tcp", False)])

    def _drain(self, sub: zmq.Socket[bytes]) -> None:
        events: list[Event] = []
        for _ in range(1000):  # then poll again, so the monitor and stop are seen
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            event = decode(frames)
            if event is not None:
                events.append(event)
        if events:
            self._emit(events)
