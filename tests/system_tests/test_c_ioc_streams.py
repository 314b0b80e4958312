"""The upstream path's timing against a C IOC: every update of EPICS' own 10 Hz scan arrives,
once and in order; the rate cap and batched frames keep the newest value and drop only older
ones.

The IOC's counters (tests/support/c_ioc.py) add exactly 1 per scan, so a gap between two
delivered values counts the updates that were coalesced, and a repeat or a step back would be a
bug. Servers are real `manage.py serve` processes, clients real WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests.support.c_ioc import COUNTERS
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

PVS = [f"CIO:v{i}" for i in range(COUNTERS)]
WINDOW_S = 3.0


@pytest.fixture(scope="module")
def uncapped(c_ioc) -> Iterator[ServerProcess]:
    """A server without the per-PV rate cap: nothing upstream may be coalesced."""
    server = ServerProcess({"OAS_SCALAR_RATE_HZ": "0"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def capped(c_ioc) -> Iterator[ServerProcess]:
    """A server that sends each scalar PV at most twice a second (OAS_SCALAR_RATE_HZ)."""
    server = ServerProcess({"OAS_SCALAR_RATE_HZ": "2"}).start()
    yield server
    server.stop()


async def follow(url: str, seconds: float, options: dict[str, Any] | None = None) -> list[Any]:
    """Subscribe to every counter, wait until each has a value, then keep every frame (parsed)
    that arrives within ``seconds``."""
    async with websockets.connect(f"{url}/api/v1/pv-socket", max_size=None) as conn:
        if options:
            await conn.send(json.dumps({"action": "options", **options}))
        await conn.send(json.dumps({"action": "subscribe", "pvs": PVS}))
        seen: set[str] = set()
        async with asyncio.timeout(20):
            while len(seen) < len(PVS):
                for message in messages(json.loads(await conn.recv())):
                    if is_value(message):
                        seen.add(message["pv"])
        frames = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frames.append(json.loads(await asyncio.wait_for(conn.recv(), left)))
            except TimeoutError:
                break
        return frames


def messages(frame: Any) -> list[dict[str, Any]]:
    return frame if isinstance(frame, list) else [frame]


def is_value(message: dict[str, Any]) -> bool:
    return "pv" in message and "value" in message and message.get("sub_type") != "meta"


def steps_per_pv(frames: list[Any]) -> dict[str, list[float]]:
    """The differences between consecutive delivered values, per PV."""
    values: dict[str, list[float]] = defaultdict(list)
    for frame in frames:
        for message in messages(frame):
            if is_value(message):
                values[message["pv"]].append(message["value"])
    return {pv: [round(b - a, 6) for a, b in zip(seen, seen[1:], strict=False)] for pv, seen in values.items()}


async def test_every_scan_of_a_c_record_arrives_once_and_in_order(uncapped):
    steps = steps_per_pv(await follow(uncapped.ws, WINDOW_S))
    assert sorted(steps) == sorted(PVS)
    for pv, diffs in steps.items():
        assert set(diffs) == {1.0}, (pv, diffs)  # a 2 would be a lost update, a 0 a repeat
        assert len(diffs) >= WINDOW_S * 10 / 2, (pv, len(diffs))  # the IOC scans at 10 Hz


async def test_the_rate_cap_sends_the_newest_value_at_most_at_its_rate(capped):
    steps = steps_per_pv(await follow(capped.ws, WINDOW_S))
    assert sorted(steps) == sorted(PVS)
    for pv, diffs in steps.items():
        assert min(diffs) >= 1.0, (pv, diffs)  # never old news, never a repeat
        # 2 Hz with the cap's 10 % slack: at most 7 values in 3 s, so at most 6 steps.
        assert len(diffs) <= WINDOW_S * 2 * 1.1, (pv, diffs)
        assert sum(diffs) >= WINDOW_S * 10 / 2, (pv, diffs)  # yet the values kept up with the IOC


async def test_batched_frames_carry_the_newest_value_of_each_pv(uncapped):
    frames = await follow(uncapped.ws, WINDOW_S, {"batch_ms": 250})
    batches = [frame for frame in frames if isinstance(frame, list)]
    assert len(batches) == len(frames) and len(batches) <= WINDOW_S * 4 + 1, frames[:3]
    for batch in batches:
        names = [m["pv"] for m in batch if is_value(m)]
        assert len(names) == len(set(names)), batch  # the latest per PV, not a queue
    steps = steps_per_pv(frames)
    assert sorted(steps) == sorted(PVS)
    for pv, diffs in steps.items():
        assert min(diffs) >= 1.0 and max(diffs) >= 2.0, (pv, diffs)  # 10 Hz into 4 frames a second
        assert sum(diffs) >= WINDOW_S * 10 / 2, (pv, diffs)
