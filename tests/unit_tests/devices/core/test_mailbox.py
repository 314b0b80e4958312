import asyncio

from devices.core.mailbox import Mailbox


class Socket:
    def __init__(self):
        self.sent = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, text):
        await self.gate.wait()
        self.sent.append(text)


def make(socket, **kw):
    stuck = []
    options = {"max_replies": 10, "stall_timeout": 5.0} | kw
    return Mailbox(socket.send, on_stuck=stuck.append, **options), stuck


async def test_latest_wins_per_key_while_the_client_is_blocked():
    socket = Socket()
    box, _ = make(socket)
    task = asyncio.create_task(box.run())
    socket.gate.clear()
    box.put_latest(("A", "value"), "a0")
    await asyncio.sleep(0.01)  # a0 is now in flight, blocked
    for i in range(1, 1000):
        box.put_latest(("A", "value"), f"a{i}")
        box.put_latest(("B", "value"), f"b{i}")
    assert box.pending() == 2  # bounded by keys, not by updates
    socket.gate.set()
    await asyncio.sleep(0.01)
    assert socket.sent == ["a0", "a999", "b999"]
    task.cancel()


async def test_replies_go_first_and_are_never_dropped():
    socket = Socket()
    box, _ = make(socket)
    socket.gate.clear()
    task = asyncio.create_task(box.run())
    box.put_latest(("A", "value"), "data")
    await asyncio.sleep(0.01)
    box.put_reply("r1")
    box.put_reply("r2")
    box.put_latest(("A", "value"), "data2")
    socket.gate.set()
    await asyncio.sleep(0.01)
    assert socket.sent == ["data", "r1", "r2", "data2"]
    task.cancel()


async def test_drop_forgets_unsubscribed_pv():
    socket = Socket()
    box, _ = make(socket)
    box.put_latest(("A", "value"), "a")
    box.put_latest(("A", "meta"), "m")
    box.put_latest(("B", "value"), "b")
    box.drop("A")
    task = asyncio.create_task(box.run())
    await asyncio.sleep(0.01)
    assert socket.sent == ["b"]
    task.cancel()


async def test_stalled_socket_is_reported_stuck():
    socket = Socket()
    box, stuck = make(socket, stall_timeout=0.05)
    socket.gate.clear()
    task = asyncio.create_task(box.run())
    box.put_latest(("A", "value"), "a")
    await asyncio.wait_for(task, 1)
    assert stuck and "accepted nothing" in stuck[0]
    assert box.closed


async def test_too_many_unread_replies_is_stuck():
    socket = Socket()
    box, stuck = make(socket, max_replies=3)
    for i in range(4):
        box.put_reply(str(i))
    assert stuck and "replies" in stuck[0]
    assert box.pending() == 0
