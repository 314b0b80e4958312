"""The ZMQ reader against a real ZMQ PUB socket sending RE Manager's framing."""

from __future__ import annotations

import json
import queue
import time

import zmq

from qsconsole.reader import ZmqConsoleReader, decode
from tests.support.ioc import free_port


def test_decode_keeps_console_text_and_recognises_the_heartbeat():
    line = decode([b"QS_Console", json.dumps({"time": 5.5, "msg": "step 1/8"}).encode()])
    assert line == ("line", (5.5, "step 1/8"))
    assert decode([b"QS_Info", json.dumps({"time": 5.6, "msg": {"status": {}}}).encode()]) == ("heartbeat", None)
    assert decode([b"Other", b"{}"]) is None
    assert decode([b"QS_Console", b"not json"]) == ("line", (None, "not json"))
    assert decode([b"a", b"b", b"c"]) is None


def wait_for(events: queue.Queue, predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if predicate(event):
            return event
    raise TimeoutError("no matching event")


def test_reads_lines_and_follows_the_publisher_going_and_coming_back():
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    events: queue.Queue = queue.Queue()
    reader = ZmqConsoleReader(address, lambda batch: [events.put(e) for e in batch])
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.bind(address)
    reader.start()
    try:
        wait_for(events, lambda e: e == ("tcp", True))
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:  # a SUB misses what precedes its subscription
            pub.send_multipart([b"QS_Console", json.dumps({"time": 1.0, "msg": "hello"}).encode()])
            try:
                got = wait_for(events, lambda e: e[0] == "line", timeout=0.2)
            except TimeoutError:
                pass
        assert got == ("line", (1.0, "hello"))
        pub.send_multipart([b"QS_Info", b'{"time": 2.0, "msg": {"status": {}}}'])
        assert wait_for(events, lambda e: e[0] != "line") == ("heartbeat", None)

        pub.close(linger=0)  # the Queue Server goes away ...
        wait_for(events, lambda e: e == ("tcp", False))
        pub = context.socket(zmq.PUB)
        pub.bind(address)  # ... and comes back on the same address
        wait_for(events, lambda e: e == ("tcp", True), timeout=15)
    finally:
        reader.stop()
        pub.close(linger=0)
        context.term()
    assert not reader._thread.is_alive()
