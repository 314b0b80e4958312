"""A camera with no IOC: a Gaussian beam drifting on a slow Lissajous path, with noise.

Frames are UInt16 Mono, made off the loop at a fixed rate, so the demo shows a live picture
(and the processing pipeline something to find) with nothing else configured.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import numpy as np

from .feed import CameraFeed, RawFrame
from .frames import Geometry


@dataclass(frozen=True)
class SimSpec:
    name: str = "sim"
    width: int = 640
    height: int = 480
    rate_hz: float = 10.0
    sigma_px: float = 25.0
    amplitude: float = 40000.0
    noise: float = 400.0
    offset: float = 1000.0

    @property
    def key(self) -> str:
        return f"sim:{self.name}:{self.width}x{self.height}@{self.rate_hz:g}"

    def beam_at(self, t: float) -> tuple[float, float]:
        """Where the beam is at time ``t`` (seconds), in pixels."""
        x = self.width * (0.5 + 0.3 * math.sin(2 * math.pi * t / 17.0))
        y = self.height * (0.5 + 0.3 * math.sin(2 * math.pi * t / 11.0 + 0.7))
        return x, y


def beam_frame(spec: SimSpec, t: float, rng: np.random.Generator) -> np.ndarray:
    """One frame: separable Gaussian (two 1-D profiles, an outer product) plus noise."""
    cx, cy = spec.beam_at(t)
    xs = np.exp(-0.5 * ((np.arange(spec.width, dtype=np.float32) - cx) / spec.sigma_px) ** 2)
    ys = np.exp(-0.5 * ((np.arange(spec.height, dtype=np.float32) - cy) / spec.sigma_px) ** 2)
    image = np.outer(ys, xs) * np.float32(spec.amplitude) + np.float32(spec.offset)
    image += rng.normal(0.0, spec.noise, image.shape).astype(np.float32)
    return np.clip(image, 0, 65535).astype(np.uint16)


RING_ABOVE = 512 * 512  # larger frames come from a ring made once (noise costs ~10 ms a megapixel)
RING = 32


class SimulationSource:
    """Makes frames for its feed while it has viewers."""

    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        self._task: asyncio.Task[None] | None = None
        self._rng = np.random.default_rng()
        self._ring: list[np.ndarray] = []
        self.counter = 0

    def start(self, feed: CameraFeed) -> None:
        geometry = Geometry(self.spec.width, self.spec.height, "Mono", "UInt16")
        feed.set_geometry(geometry)
        self._task = asyncio.get_running_loop().create_task(self._run(feed, geometry), name=self.spec.key)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self, feed: CameraFeed, geometry: Geometry) -> None:
        period = 1.0 / max(self.spec.rate_hz, 0.1)
        started = time.monotonic()
        big = self.spec.width * self.spec.height > RING_ABOVE
        while True:
            now = time.time()
            if big and len(self._ring) >= RING:
                image = self._ring[self.counter % RING]  # so a benchmark measures streaming, not this
            else:
                image = await asyncio.to_thread(beam_frame, self.spec, time.monotonic() - started, self._rng)
                if big:
                    self._ring.append(image)
            self.counter += 1
            feed.offer(RawFrame(image, geometry, self.counter, now))
            await asyncio.sleep(max(period - (time.time() - now), 0.0))
