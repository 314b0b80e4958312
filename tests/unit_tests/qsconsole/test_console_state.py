"""The source state a console client is told: never an older state after a newer one.

The relay answers a replay with the state as it is then, and announces each change to the
``qs.console`` group. Both reach the hub on one channel, but the session passes the answer on
only when its awaiting task resumes, after the hub may already have dispatched a newer group
state. Bridge, hub and session run here over the in-memory layer with a reader that connects
at once, so the messages meet exactly as they did in the flaky browser test.
"""

from __future__ import annotations

from typing import Any

import pytest

from qsconsole.relay import ConsoleRelay
from qsconsole.session import QsConsoleSession
from tests.support.sim import SimSource
from tests.support.stack import Client, Stack


class InstantReader:
    """Stands in for the ZMQ reader: the TCP connection comes up as soon as it starts."""

    def __init__(self, address: str, emit: Any) -> None:
        self.address = address
        self.emit = emit

    def start(self) -> None:
        self.emit([("tcp", True)])

    def stop(self) -> None:
        pass


@pytest.fixture
async def stack():
    async with Stack(SimSource) as s:
        s.bridge.console = ConsoleRelay(layer=s.layer, publisher=s.bridge.publisher,
                                        settings_now=lambda: s.settings, reader_factory=InstantReader)
        yield s
        await s.bridge.console.stop()


async def states_after(client: Client, seconds: float = 0.3) -> list[bool]:
    return [m["connected"] for m in await client.quiet(seconds) if "console" in m]


async def test_a_client_joining_while_the_source_connects_is_left_connected(stack):
    client = Client(QsConsoleSession, stack)
    await client.session.start()
    try:
        states = await states_after(client)
        assert states and states[-1] is True, states
    finally:
        await client.session.end()


async def test_a_replay_answer_never_overrides_a_newer_state(stack):
    client = Client(QsConsoleSession, stack)
    await client.session.start()
    try:
        assert (await states_after(client))[-1] is True
        relay = stack.bridge.console
        answer = relay.replay

        def replay_then_disconnect(message: dict[str, Any]) -> dict[str, Any]:
            outcome = answer(message)  # the state as it is now: connected ...
            relay._reader.emit([("tcp", False)])  # ... and the Queue Server goes before it is sent
            return outcome

        relay.replay = replay_then_disconnect
        await client.send({"action": "replay", "after": 0})
        states = await states_after(client)
        assert states and states[-1] is False, states
    finally:
        await client.session.end()
