"""The publisher batches PV updates per tick and per hub, over a real in-memory channel layer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from devices.bridge.publisher import Publisher
from devices.channel_layer import messages as m


class Pv:
    """An audience as PvEntry is one: leases by hub channel, current messages."""

    def __init__(self, name: str, *hubs: str) -> None:
        self.name = name
        self.leases = {hub: 0.0 for hub in hubs}
        self.value = 0

    def value_message(self) -> dict[str, Any]:
        return {"type": m.PV_VALUE, "pv": self.name, "value": str(self.value)}

    def meta_message(self) -> dict[str, Any]:
        return {"type": m.PV_META, "pv": self.name, "meta": {"units": "mm"}}


@pytest.fixture
async def setup():
    layer = InMemoryChannelLayer()
    publisher = Publisher(layer, tick_s=0.02)
    task = asyncio.create_task(publisher.run())
    yield layer, publisher
    task.cancel()


async def batch(layer: InMemoryChannelLayer, hub: str) -> list[dict[str, Any]]:
    message = await asyncio.wait_for(layer.receive(hub), 2)
    assert message["type"] == m.PV_BATCH
    return json.loads(message["updates"])


async def test_each_hub_gets_one_batch_with_only_the_pvs_it_leases(setup):
    layer, publisher = setup
    a, b = await layer.new_channel(), await layer.new_channel()
    both, only_a = Pv("X:both", a, b), Pv("X:a", a)
    publisher.to_audience(("X:both", "value"), both, both.value_message())
    publisher.to_audience(("X:a", "value"), only_a, only_a.value_message())
    assert [u["pv"] for u in await batch(layer, a)] == ["X:both", "X:a"]
    assert [u["pv"] for u in await batch(layer, b)] == ["X:both"]
    assert publisher.batches == 2 and publisher.sent == 3


async def test_updates_of_one_tick_keep_only_the_latest_per_key(setup):
    layer, publisher = setup
    hub = await layer.new_channel()
    pv = Pv("X:fast", hub)
    publisher.to_audience(("warm", "value"), Pv("X:warm"), {})  # a first flush starts the tick
    await asyncio.sleep(0.005)
    for value in range(50):
        pv.value = value
        publisher.to_audience(("X:fast", "value"), pv, pv.value_message())
    updates = await batch(layer, hub)
    assert [u["value"] for u in updates] == ["49"]


async def test_a_hub_that_released_the_pv_gets_nothing(setup):
    layer, publisher = setup
    hub = await layer.new_channel()
    pv = Pv("X:gone", hub)
    pv.leases.clear()
    publisher.to_audience(("X:gone", "value"), pv, pv.value_message())
    await asyncio.sleep(0.1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(hub), 0.1)


async def test_a_snapshot_is_rendered_when_sent_and_follows_the_live_update(setup):
    layer, publisher = setup
    hub = await layer.new_channel()
    pv = Pv("X:snap", hub)
    publisher.to_audience(("X:snap", "value"), pv, pv.value_message())  # value 0, built now
    publisher.snapshot(hub, "X:snap", pv)
    pv.value = 7  # changes before the tick is sent
    updates = await batch(layer, hub)
    assert [(u["type"], u.get("value")) for u in updates] == [
        (m.PV_VALUE, "0"), (m.PV_META, None), (m.PV_VALUE, "7")]
