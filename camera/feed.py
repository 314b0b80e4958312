"""One camera shared by all its viewers in this process: one upstream subscription, one
decode per frame, one encode per frame and output setting.

A source hands the newest raw frame over (latest wins: a frame that arrives while the last
is still being worked on replaces the waiting one, never queues). Each frame is decoded
once, then encoded once per output setting that has a viewer due for a frame (viewers ask
for at most their rate); viewers that are not due, or whose socket is still sending, skip it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from devices.metrics import instruments as metrics

from .encode import Output, encode_jpeg
from .frames import CodecError, FrameError, Geometry, to_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawFrame:
    """A frame as the source delivered it (decoded off the loop, later)."""

    data: np.ndarray | None
    geometry: Geometry | None
    counter: int
    timestamp: float
    # A frame that carries its own shape (PV Access): data and geometry, worked out (maybe
    # decompressed) off the loop, and only for frames a viewer is due to get.
    unpack: Callable[[], tuple[np.ndarray, Geometry]] | None = None


@dataclass(frozen=True)
class EncodedFrame:
    jpeg: bytes
    size: tuple[int, int]
    counter: int
    timestamp: float
    output: Output


class Analysis(Protocol):
    """A processing pipeline setting; viewers with equal analyses share one run per frame."""

    def __hash__(self) -> int: ...

    def run(self, image: np.ndarray) -> dict[str, Any]: ...


class Viewer(Protocol):
    output: Output | None  # None: wants no JPEG (a REST grab of raw frames)
    analysis: Analysis | None
    wants_image: bool  # gets the decoded (transformed) frame itself

    def due(self, now: float) -> bool:
        """Whether this viewer wants a frame now (its rate allows one)."""

    def frame(self, frame: EncodedFrame) -> None: ...

    def shape(self, geometry: Geometry) -> None:
        """The picture's size, colour mode or data type changed (or: this is it, on joining)."""

    def problem(self, message: str, code: str) -> None: ...

    def analysed(self, counter: int, results: dict[str, Any]) -> None: ...

    def image(self, counter: int, image: np.ndarray) -> None: ...


class Source(Protocol):
    def start(self, feed: CameraFeed) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class FeedStats:
    frames_in: int = 0
    decoded: int = 0
    encoded: dict[Output, int] = field(default_factory=dict)
    analysed: int = 0
    skipped: int = 0  # raw frames replaced before they were worked on
    errors: int = 0


class CameraFeed:
    """Fan-out point of one camera in this process."""

    def __init__(self, key: str, source: Source, *, on_empty: Callable[[CameraFeed], None],
                 transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """``transform``: the camera's binning, mirroring and rotation, applied once per frame."""
        self.key = key
        self.source = source
        self.transform = transform
        self.viewers: set[Viewer] = set()
        self.geometry: Geometry | None = None
        self.stats = FeedStats()
        self._pending: RawFrame | None = None
        self._worker: asyncio.Task[None] | None = None
        self._on_empty = on_empty
        self._last_problem: str | None = None
        self._last_code = "camera_problem"
        self.started = False

    # --- viewers --------------------------------------------------------------------------

    def join(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        if self.geometry is not None:
            viewer.shape(self.geometry)
        if self._last_problem is not None:
            viewer.problem(self._last_problem, self._last_code)
        if not self.started:
            self.started = True
            self.source.start(self)

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if not self.viewers:
            self._on_empty(self)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        await self.source.stop()

    # --- from the source (on the loop) ------------------------------------------------------

    def set_geometry(self, geometry: Geometry | None) -> None:
        if geometry != self.geometry and geometry is not None:
            self.geometry = geometry
            for viewer in list(self.viewers):
                viewer.shape(geometry)
        elif geometry is None:
            self.geometry = None

    def report(self, message: str | None, code: str = "camera_problem") -> None:
        """A problem of the camera itself (PV not connecting, bad mode); None: it is gone."""
        if message == self._last_problem:
            return
        self._last_problem, self._last_code = message, code
        if message is not None:
            for viewer in list(self.viewers):
                viewer.problem(message, code)

    def offer(self, frame: RawFrame) -> None:
        self.stats.frames_in += 1
        metrics.CAMERA_RECEIVED.inc()
        if self._pending is not None:
            self.stats.skipped += 1
        self._pending = frame
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"camera-{self.key}")

    # --- the work, off the loop -------------------------------------------------------------

    async def _work(self) -> None:
        while self._pending is not None:
            raw, self._pending = self._pending, None
            now = time.monotonic()
            due = [v for v in self.viewers if v.due(now)]
            if not due:
                continue
            geometry = raw.geometry or self.geometry
            if geometry is None and raw.unpack is None:
                continue
            try:
                image, geometry = await asyncio.to_thread(self._decode, raw, geometry)
            except CodecError as exc:
                self.stats.errors += 1
                self.report(f"Frame {raw.counter} cannot be shown: {exc}", "bad_codec")
                continue
            except (FrameError, ValueError) as exc:
                self.stats.errors += 1
                self.report(f"Frame {raw.counter} cannot be shown: {exc}", "bad_frame")
                continue
            self.stats.decoded += 1
            if raw.unpack is not None:
                self.set_geometry(geometry)
            if self._last_problem is not None and self._last_problem.startswith("Frame "):
                self._last_problem = None
            outputs: dict[Output, list[Viewer]] = {}
            analyses: dict[Analysis, list[Viewer]] = {}
            for viewer in due:
                if viewer.wants_image:
                    viewer.image(raw.counter, image)
                if viewer.output is not None:
                    outputs.setdefault(viewer.output, []).append(viewer)
                if viewer.analysis is not None:
                    analyses.setdefault(viewer.analysis, []).append(viewer)
            encoded = await asyncio.gather(*(asyncio.to_thread(encode_jpeg, image, out) for out in outputs),
                                           return_exceptions=True)
            for (output, viewers), result in zip(outputs.items(), encoded, strict=True):
                if isinstance(result, BaseException):
                    self.stats.errors += 1
                    log.warning("encoding a frame of %s failed: %r", self.key, result)
                    continue
                self.stats.encoded[output] = self.stats.encoded.get(output, 0) + 1
                metrics.CAMERA_ENCODED.inc()
                jpeg, size = result
                frame = EncodedFrame(jpeg, size, raw.counter, raw.timestamp, output)
                for viewer in viewers:
                    if viewer in self.viewers:
                        viewer.frame(frame)
            if analyses:
                results = await asyncio.gather(*(asyncio.to_thread(a.run, image) for a in analyses),
                                               return_exceptions=True)
                for viewers, result in zip(analyses.values(), results, strict=True):
                    if isinstance(result, BaseException):
                        log.warning("processing a frame of %s failed: %r", self.key, result)
                        result = {"error": f"processing failed: {result}"}
                    else:
                        self.stats.analysed += 1
                    for viewer in viewers:
                        if viewer in self.viewers:
                            viewer.analysed(raw.counter, result)


    def _decode(self, raw: RawFrame, geometry: Geometry | None) -> tuple[np.ndarray, Geometry]:
        if raw.unpack is not None:
            data, geometry = raw.unpack()
        else:
            data = raw.data
        assert data is not None and geometry is not None
        image = to_image(data, geometry)
        return (self.transform(image) if self.transform is not None else image), geometry


class Feeds:
    """The cameras this process streams, by key; a feed ends with its last viewer."""

    def __init__(self) -> None:
        self.feeds: dict[str, CameraFeed] = {}

    def feed(self, key: str, make_source: Callable[[], Source],
             transform: Callable[[np.ndarray], np.ndarray] | None = None) -> CameraFeed:
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = CameraFeed(key, make_source(), on_empty=self._ended, transform=transform)
        return feed

    def _ended(self, feed: CameraFeed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]
        asyncio.get_running_loop().create_task(feed.close())
