"""/api/v1/qs-console-socket through the whole server (ASGI app, hub, embedded bridge).

First against a ZMQ PUB socket sending RE Manager's framing (fast, exact control of what is
published), then against a real RE Manager running a plan and being restarted.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
import zmq
from django.conf import settings

from tests.support.ioc import free_port

pytestmark = [pytest.mark.system, pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]
PATH = "/api/v1/qs-console-socket"


class Publisher:
    """Stands in for RE Manager's console publisher: same address kind, same frames."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.context = zmq.Context()
        self.accepted = 0
        self.sock: zmq.Socket | None = None
        self.bind()

    def bind(self) -> None:
        self.sock = self.context.socket(zmq.PUB)
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_ACCEPTED)
        self.sock.bind(self.address)

    def count_accepted(self) -> int:
        while self.monitor.poll(0):
            self.monitor.recv_multipart()
            self.accepted += 1
        return self.accepted

    def line(self, text: str, stamp: float) -> None:
        self.sock.send_multipart([b"QS_Console", json.dumps({"time": stamp, "msg": text}).encode()])

    def heartbeat(self) -> None:
        status = {"time": 0.0, "msg": {"status": {"re_state": "idle"}}}
        self.sock.send_multipart([b"QS_Info", json.dumps(status).encode()])

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
        self.sock.close(linger=0)

    def term(self) -> None:
        self.close()
        self.context.destroy(linger=0)  # never waits on a socket a failed test left open


@pytest.fixture
def publisher():
    pub = Publisher()
    original = settings.OAS
    settings.OAS = replace(original, zmq_host="127.0.0.1", zmq_port=pub.port, qs_console_backlog=10,
                           qs_console_heartbeat_s=30.0)
    yield pub
    settings.OAS = original
    pub.term()


def is_line(text: str):
    return lambda m: m.get("msg") == text


async def warm_up(pub: Publisher, sock) -> int:
    """Publish until the relay's subscription is in place (ZMQ drops what precedes it)."""
    await sock.next(lambda m: m.get("console") == "connected", timeout=15)
    for i in range(100):
        pub.line(f"warm-up {i}", 1000.0 + i)
        try:
            got = await sock.next(lambda m: str(m.get("msg", "")).startswith("warm-up"), timeout=0.2)
            return got["seq"]
        except TimeoutError:
            continue
    raise TimeoutError("the console relay never received the publisher")


async def test_lines_backlog_replay_and_one_subscription(publisher, ws):
    first = await ws(PATH)
    await warm_up(publisher, first)
    await first.drain(0.3)
    for i in range(50):
        publisher.line(f"line {i}", 2000.0 + i)
        if i % 7 == 0:
            publisher.heartbeat()  # never forwarded
    got = []
    while len(got) < 50:
        msg = await first.next(timeout=10)
        assert "status" not in str(msg.get("msg")), msg  # no QS_Info content reaches a client
        got.append(msg)
    assert [m["msg"] for m in got] == [f"line {i}" for i in range(50)]
    assert [m["time"] for m in got] == [2000.0 + i for i in range(50)]  # the Queue Server's own message
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50

    late = await ws(PATH)  # a new client: the state, then the last OAS_QS_CONSOLE_BACKLOG entries
    state = await late.next()
    assert state["console"] == "connected" and state["source"] == publisher.address
    backlog = [await late.next() for _ in range(10)]
    assert [m["msg"] for m in backlog] == [f"line {i}" for i in range(40, 50)]

    resumed = await ws(f"{PATH}?after={seqs[29]}")  # a reconnect that saw up to line 29
    await resumed.next(lambda m: "console" in m)
    replayed = [await resumed.next() for _ in range(20)]
    assert [m["msg"] for m in replayed] == [f"line {i}" for i in range(30, 50)]
    summary = await resumed.next()
    assert summary["action"] == "replay" and summary["complete"] is True and summary["sent"] == 20

    await first.send({"action": "replay", "after": seqs[44], "id": 7})
    await first.next(lambda m: "console" in m)
    again = [await first.next() for _ in range(5)]
    assert [m["msg"] for m in again] == [f"line {i}" for i in range(45, 50)]
    assert (await first.next())["id"] == 7
    await first.send({"action": "tail"})
    error = await first.next()
    assert error["code"] == "unknown_action" and "replay" in error["error"]
    await first.send("{bad")
    assert (await first.next())["code"] == "bad_json"

    publisher.line("still serving", 3000.0)
    assert (await first.next(is_line("still serving")))["seq"] > seqs[-1]
    assert (await late.next(is_line("still serving")))["msg"] == "still serving"
    assert publisher.count_accepted() == 1  # three clients, one ZMQ connection


async def test_the_publisher_going_away_and_coming_back(publisher, ws):
    sock = await ws(PATH)
    await warm_up(publisher, sock)
    publisher.close()
    gone = await sock.next(lambda m: "console" in m, timeout=15)
    assert gone["console"] == "disconnected" and gone["connected"] is False and publisher.address in gone["message"]
    await asyncio.sleep(0.5)
    publisher.bind()
    back = await sock.next(lambda m: "console" in m, timeout=20)
    assert back["console"] == "connected"
    for i in range(100):  # streaming resumes, no server restart
        publisher.line(f"after restart {i}", 5000.0 + i)
        try:
            await sock.next(lambda m: str(m.get("msg", "")).startswith("after restart"), timeout=0.2)
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("no line after the publisher came back")


async def test_a_missing_heartbeat_counts_as_gone(publisher, ws):
    settings.OAS = replace(settings.OAS, qs_console_heartbeat_s=0.5)
    sock = await ws(PATH)
    await warm_up(publisher, sock)
    # Beats for a second, as RE Manager sends them, then none. Not one beat: ZMQ applies each
    # topic's subscription on its own, and under load the QS_Info one was seen to land after
    # the warm-up's QS_Console line, so a single beat was dropped and no staleness followed.
    for _ in range(10):
        publisher.heartbeat()
        await asyncio.sleep(0.1)
    stale = await sock.next(lambda m: m.get("console") == "disconnected", timeout=10)
    assert "no heartbeat" in stale["message"]
    for _ in range(30):
        publisher.heartbeat()
        try:
            await sock.next(lambda m: m.get("console") == "connected", timeout=0.2)
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("a heartbeat did not bring the console back")


async def test_a_real_queue_server_console_and_its_restart(queue_server, ws):
    original = settings.OAS
    settings.OAS = replace(original, zmq_host="127.0.0.1", zmq_port=queue_server.info_port)
    try:
        sock = await ws(PATH)
        await sock.next(lambda m: m.get("console") == "connected", timeout=20)
        await asyncio.to_thread(queue_server.open_environment)
        await asyncio.to_thread(queue_server.run_sleep_plan, 1.0, 2)
        step = await sock.next(lambda m: "sleep_plan step 2/2" in str(m.get("msg")), timeout=30)
        assert isinstance(step["time"], float) and isinstance(step["seq"], int)
        await asyncio.to_thread(queue_server.wait_for, lambda s: s.get("manager_state") == "idle", 30, "idle")

        await asyncio.to_thread(queue_server.stop_manager)
        assert (await sock.next(lambda m: "console" in m, timeout=20))["console"] == "disconnected"
        await asyncio.to_thread(queue_server.start_manager)
        assert (await sock.next(lambda m: "console" in m, timeout=60))["console"] == "connected"
        await asyncio.to_thread(queue_server.wait_for, lambda s: s.get("manager_state") == "idle", 60,
                                "the restarted manager")
        await asyncio.to_thread(queue_server.run_sleep_plan, 1.0, 2)
        again = await sock.next(lambda m: "sleep_plan step 1/2" in str(m.get("msg")), timeout=30)
        assert again["seq"] > step["seq"]
        await asyncio.to_thread(queue_server.wait_for, lambda s: s.get("manager_state") == "idle", 30, "idle")
    finally:
        settings.OAS = original
