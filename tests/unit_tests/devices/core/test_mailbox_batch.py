"""The mailbox's batched delivery (``set_batch``): one JSON-array frame of the latest data per
window, replies alone and first, and unchanged single frames while batching is off."""

import asyncio
import json

from devices.core.mailbox import BATCH_MAX_CHARS, Mailbox


class Socket:
    """Records each frame with the loop time it was sent; ``gate`` blocks sends while clear."""

    def __init__(self):
        self.sent = []
        self.times = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, payload):
        await self.gate.wait()
        self.sent.append(payload)
        self.times.append(asyncio.get_running_loop().time())


def make(socket, **kw):
    stuck = []
    options = {"max_replies": 10, "stall_timeout": 5.0} | kw
    return Mailbox(socket.send, on_stuck=stuck.append, **options), stuck


def value(pv, v):
    return json.dumps({"pv": pv, "value": v})


async def until(predicate, timeout=3.0):
    """Wait for a condition the mailbox reaches by itself (no assertion on how fast)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_off_by_default_every_message_is_its_own_frame_unchanged():
    socket = Socket()
    box, _ = make(socket)
    texts = [value("A", 1), value("B", 2), '{"pv": "C", "value": [1, 2]}']
    for i, text in enumerate(texts):
        box.put_latest((f"K{i}", "value"), text)
    box.put_reply('{"action": "refresh"}')
    task = asyncio.create_task(box.run())
    await until(lambda: len(socket.sent) == 4)
    assert socket.sent == ['{"action": "refresh"}', *texts]  # the very strings put in, byte for byte
    task.cancel()


async def test_a_batch_is_one_array_frame_of_the_latest_message_per_key():
    socket = Socket()
    box, _ = make(socket)
    box.set_batch(0.05)
    socket.gate.clear()
    task = asyncio.create_task(box.run())
    box.put_latest(("A", "value"), value("A", 0))
    await asyncio.sleep(0.01)  # that first batch is in flight, blocked
    for i in range(1, 100):
        box.put_latest(("A", "value"), value("A", i))
        box.put_latest(("B", "value"), value("B", i))
    box.put_latest(("B", "meta"), '{"pv": "B", "sub_type": "meta"}')
    assert box.pending() == 3
    socket.gate.set()
    await until(lambda: len(socket.sent) == 2)
    assert socket.sent[0] == "[" + value("A", 0) + "]"  # an array even for one message
    assert json.loads(socket.sent[1]) == [{"pv": "A", "value": 99}, {"pv": "B", "value": 99},
                                          {"pv": "B", "sub_type": "meta"}]
    assert socket.sent[1] == "[" + ",".join([value("A", 99), value("B", 99), '{"pv": "B", "sub_type": "meta"}']) + "]"
    task.cancel()


async def test_at_most_one_batch_per_window_and_the_first_after_a_quiet_spell_at_once():
    socket = Socket()
    box, _ = make(socket)
    window = 0.3
    box.set_batch(window)
    task = asyncio.create_task(box.run())
    loop = asyncio.get_running_loop()
    put_at = loop.time()
    box.put_latest(("A", "value"), value("A", 1))
    await until(lambda: len(socket.sent) == 1)
    assert socket.times[0] - put_at < window  # not held back: nothing was sent before it
    for i in range(2, 30):  # a burst right after: it waits for the window, then goes as one
        box.put_latest(("A", "value"), value("A", i))
        await asyncio.sleep(0.005)
    await until(lambda: len(socket.sent) == 2)
    assert socket.times[1] - socket.times[0] >= window
    assert json.loads(socket.sent[1]) == [{"pv": "A", "value": 29}]
    await asyncio.sleep(window * 1.5)  # quiet for longer than the window
    put_at = loop.time()
    box.put_latest(("A", "value"), value("A", 30))
    await until(lambda: len(socket.sent) == 3)
    assert socket.times[2] - put_at < window
    task.cancel()


async def test_replies_are_never_batched_and_never_wait_for_the_window():
    socket = Socket()
    box, _ = make(socket)
    box.set_batch(10.0)  # a window far longer than this test
    task = asyncio.create_task(box.run())
    box.put_reply('{"action": "options", "batch_ms": 10000}')
    box.put_latest(("A", "value"), value("A", 1))
    await until(lambda: len(socket.sent) == 2)
    box.put_latest(("A", "value"), value("A", 2))  # held for the window ...
    box.put_reply('{"action": "subscribe", "id": 1}')
    box.put_reply('{"action": "set", "id": 2}')
    await until(lambda: len(socket.sent) == 4)  # ... the replies are not
    assert socket.sent == ['{"action": "options", "batch_ms": 10000}', "[" + value("A", 1) + "]",
                           '{"action": "subscribe", "id": 1}', '{"action": "set", "id": 2}']
    assert box.pending() == 1
    box.set_batch(0)  # switched off: what was held goes out at once, as single frames again
    await until(lambda: len(socket.sent) == 5)
    assert socket.sent[4] == value("A", 2)
    task.cancel()


async def test_payloads_that_are_not_text_are_never_joined():
    socket = Socket()
    box, _ = make(socket)
    box.set_batch(0.01)
    frame = b"\xff\xd8jpeg"
    box.put_latest(("frame",), ('{"frame": 1}', frame))
    box.put_latest(("raw",), frame)
    box.put_latest(("analysis",), '{"processing": {}}')
    task = asyncio.create_task(box.run())
    await until(lambda: len(socket.sent) == 3)
    assert socket.sent[:2] == [('{"frame": 1}', frame), frame]  # as they were put, one frame each
    assert socket.sent[2] == '[{"processing": {}}]'
    task.cancel()


async def test_a_stalled_socket_is_still_reported_stuck_in_batch_mode():
    socket = Socket()
    box, stuck = make(socket, stall_timeout=0.05)
    box.set_batch(0.02)
    socket.gate.clear()
    task = asyncio.create_task(box.run())
    box.put_latest(("A", "value"), value("A", 1))
    await asyncio.wait_for(task, 2)
    assert stuck and "accepted nothing" in stuck[0]
    assert box.closed


async def test_close_wakes_a_sender_holding_data_for_the_window():
    socket = Socket()
    box, _ = make(socket)
    box.set_batch(10.0)
    task = asyncio.create_task(box.run())
    box.put_latest(("A", "value"), value("A", 1))
    await until(lambda: len(socket.sent) == 1)
    box.put_latest(("A", "value"), value("A", 2))
    await asyncio.sleep(0.02)
    box.close()
    await asyncio.wait_for(task, 1)  # ends without waiting out the window
    assert len(socket.sent) == 1


async def test_a_batch_over_the_size_cap_goes_in_several_frames_one_after_the_other():
    socket = Socket()
    box, _ = make(socket)
    box.set_batch(10.0)  # a window far longer than this test: the frames after the first do not wait for it
    texts = [value(f"PV{i}", "x" * 1000) for i in range(3000)]  # ~3 MB waiting at once
    for i, text in enumerate(texts):
        box.put_latest((f"PV{i}", "value"), text)
    task = asyncio.create_task(box.run())
    await until(lambda: box.pending() == 0)
    assert len(socket.sent) == 3
    assert all(len(frame) <= BATCH_MAX_CHARS for frame in socket.sent)
    assert [m for frame in socket.sent for m in json.loads(frame)] == [json.loads(t) for t in texts]  # in key order
    task.cancel()


async def test_a_text_larger_than_the_cap_goes_alone_as_a_one_element_array():
    socket = Socket()
    box, _ = make(socket)
    box.set_batch(10.0)
    huge = value("WAVE", "x" * (BATCH_MAX_CHARS + 10))
    box.put_latest(("A", "value"), value("A", 1))
    box.put_latest(("WAVE", "value"), huge)
    box.put_latest(("B", "value"), value("B", 2))
    task = asyncio.create_task(box.run())
    await until(lambda: len(socket.sent) == 3)
    assert socket.sent == ["[" + value("A", 1) + "]", "[" + huge + "]", "[" + value("B", 2) + "]"]
    task.cancel()


async def test_data_newer_than_a_split_batch_waits_for_the_next_window():
    socket = Socket()
    box, _ = make(socket)
    box.set_batch(10.0)
    big = "x" * 600_000  # two do not fit one frame
    for pv in ("A", "B", "C"):
        box.put_latest((pv, "value"), value(pv, big))
    socket.gate.clear()
    task = asyncio.create_task(box.run())
    await asyncio.sleep(0.02)  # the first frame (A) is in flight, blocked
    box.put_latest(("D", "value"), value("D", big))  # came after the window closed
    socket.gate.set()
    await until(lambda: len(socket.sent) == 3)
    assert [json.loads(frame)[0]["pv"] for frame in socket.sent] == ["A", "B", "C"]
    await asyncio.sleep(0.1)
    assert len(socket.sent) == 3 and box.pending() == 1  # D goes a window after A, not at once
    task.cancel()
