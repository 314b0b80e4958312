"""The in-process hand-over of PV batches (channel_layer/local.py): a channel registered on a
loop is reached directly from that loop, with the very message objects, and from nowhere else."""

import asyncio

import pytest

from devices.channel_layer import local


@pytest.fixture
def channel():
    name = "hub.test-local!abc"
    yield name
    local.unregister(name)


async def test_a_registered_channel_gets_the_batch_from_its_own_loop_uncopied(channel):
    got = []
    local.register(channel, got.append)
    receive = local.receiver(channel, asyncio.get_running_loop())
    assert receive is not None
    batch = [{"type": "pv.value", "pv": "A", "value": "1.5"}]
    receive(batch)
    assert got == [batch] and got[0] is batch and got[0][0] is batch[0]  # shared, not copied


async def test_a_channel_on_another_loop_goes_through_the_layer(channel):
    local.register(channel, lambda batch: None)
    other = asyncio.new_event_loop()
    try:
        assert local.receiver(channel, other) is None
    finally:
        other.close()


async def test_unknown_and_unregistered_channels_go_through_the_layer(channel):
    loop = asyncio.get_running_loop()
    assert local.receiver(channel, loop) is None
    local.register(channel, lambda batch: None)
    local.unregister(channel)
    assert local.receiver(channel, loop) is None
    local.unregister(channel)  # twice (a hub stopped twice) is harmless


async def test_registering_again_replaces_the_receiver(channel):
    first, second = [], []
    local.register(channel, first.append)
    local.register(channel, second.append)
    receive = local.receiver(channel, asyncio.get_running_loop())
    assert receive is not None
    receive([])
    assert first == [] and second == [[]]


async def test_a_receiver_registered_on_a_loop_in_another_thread_is_not_this_loops(channel):
    def register_elsewhere():
        async def main():
            local.register(channel, lambda batch: None)
        asyncio.run(main())

    await asyncio.to_thread(register_elsewhere)
    assert local.receiver(channel, asyncio.get_running_loop()) is None


def test_registering_needs_a_running_loop(channel):
    with pytest.raises(RuntimeError):
        local.register(channel, lambda batch: None)
