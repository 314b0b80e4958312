"""Which camera a name means, and grabbing decoded frames of it (REST, backgrounds).

A name is a built-in simulation (``sim``, ``sim:<w>x<h>``) or a Camera row. The feed key
includes the row's last change, so viewers that come after an edit get a feed with the new
settings while the current ones finish on the old.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from channels.db import database_sync_to_async
from django.conf import settings

from devices.channel_layer.pvnames import SEPARATOR, PvNameError, parse_pv_name, topic_of
from devices.sources import ca_executor

from .area_detector import AdSpec, AreaDetectorSource
from .encode import Output
from .feed import Analysis, CameraFeed, EncodedFrame, Feeds, Source
from .frames import Geometry
from .processing import camera_transform
from .pva_spec import PvaSpec
from .simulation import SimSpec, SimulationSource

_FEEDS: dict[asyncio.AbstractEventLoop, Feeds] = {}


def camera_stats() -> dict[str, dict[str, Any]]:
    """What each camera feed of this process did (for /api/v1/health and the benchmark)."""
    out: dict[str, dict[str, Any]] = {}
    for key, feed in feeds().feeds.items():
        stats = feed.stats
        out[key] = {"viewers": len(feed.viewers), "frames_in": stats.frames_in, "decoded": stats.decoded,
                    "skipped": stats.skipped, "errors": stats.errors, "analysed": stats.analysed,
                    "encoded": {f"log={o.log},max={o.max_size},q={o.quality}": n for o, n in stats.encoded.items()}}
    return out


def feeds() -> Feeds:
    """This process's cameras (one registry per event loop)."""
    loop = asyncio.get_running_loop()
    registry = _FEEDS.get(loop)
    if registry is None:
        registry = _FEEDS[loop] = Feeds()
    return registry


def builtin_camera(name: str) -> SimSpec | None:
    """Cameras that need no configuration: ``sim``, ``sim:<width>x<height>`` and
    ``sim:<width>x<height>@<frames a second>``."""
    if name == "sim":
        return SimSpec()
    if not name.startswith("sim:"):
        return None
    size, _, rate = name[4:].partition("@")
    w, _, h = size.partition("x")
    if not (w.isdigit() and h.isdigit() and 1 <= int(w) <= 4096 and 1 <= int(h) <= 4096):
        return None
    hz = 10.0
    if rate:
        try:
            hz = float(rate)
        except ValueError:
            return None
        if not 0.1 <= hz <= 100:
            return None
    return SimSpec(name=name, width=int(w), height=int(h), rate_hz=hz)


@dataclass(frozen=True)
class CameraTarget:
    """Everything needed to open (or join) one camera's feed."""

    name: str
    key: str
    spec: SimSpec | AdSpec | PvaSpec
    transform: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def array_pv(self) -> str | None:
        return None if isinstance(self.spec, SimSpec) else self.spec.array

    def source(self) -> Source:
        if isinstance(self.spec, SimSpec):
            return SimulationSource(self.spec)
        timeout = settings.OAS.camera_connect_timeout_s
        if isinstance(self.spec, PvaSpec):
            from .pva_detector import PvaDetectorSource  # p4p only once a PVA camera is used

            return PvaDetectorSource(self.spec, connect_timeout_s=timeout)
        return AreaDetectorSource(self.spec, executor=ca_executor(), connect_timeout_s=timeout)

    def feed(self) -> CameraFeed:
        return feeds().feed(self.key, self.source, self.transform)


def _from_row(name: str) -> CameraTarget | None:
    from .models import Camera

    row = Camera.objects.filter(name=name).first()
    if row is None:
        return None
    config = row.camera_config()
    transform = None if config == type(config)() else (lambda image, c=config: camera_transform(image, c))
    if row.source == Camera.Source.SIMULATION:
        spec: SimSpec | AdSpec | PvaSpec = SimSpec(name=row.name, width=row.sim_width, height=row.sim_height,
                                                   rate_hz=row.sim_rate_hz)
    else:
        spec = spec_from_message({"imageArray_PV": row.array_pv, **row.pvs})
    return CameraTarget(row.name, f"{spec.key}|{row.name}@{row.updated.timestamp()}", spec, transform)


async def camera_named(name: str) -> CameraTarget | None:
    """The camera called ``name``, or None."""
    builtin = builtin_camera(name)
    if builtin is not None:
        return CameraTarget(name, builtin.key, builtin)
    return await database_sync_to_async(_from_row)(name)


def camera_from_pvs(message: dict[str, Any]) -> CameraTarget:
    """ophyd-websocket's way: the client lists the Area Detector PVs (ValueError if bad)."""
    spec = spec_from_message(message)
    return CameraTarget(spec.array, spec.key, spec)


def spec_from_message(message: dict[str, Any]) -> AdSpec | PvaSpec:
    """An NTNDArray camera for a ``pva://`` (or ``ca://``) array PV, else Area Detector's CA PVs."""
    array = message.get("imageArray_PV")
    if isinstance(array, str) and SEPARATOR in array:
        try:
            scheme, name = parse_pv_name(array)
        except PvNameError as exc:
            raise ValueError(f"'imageArray_PV': {exc}") from None
        if scheme == "pva":
            return PvaSpec(topic_of(array))
        message = {**message, "imageArray_PV": name}  # ca://: the Channel Access path
    return AdSpec.from_message(message)


class _Grab:
    """A viewer that takes decoded frames and wants no JPEG."""

    output: Output | None = None
    analysis: Analysis | None = None
    wants_image = True

    def __init__(self, count: int) -> None:
        self.count = count
        self.images: list[np.ndarray] = []
        self.geometry: Geometry | None = None
        self.problems: list[str] = []
        self.done = asyncio.Event()

    def due(self, now: float) -> bool:
        return len(self.images) < self.count

    def image(self, counter: int, image: np.ndarray) -> None:
        if len(self.images) < self.count:
            self.images.append(np.array(image, copy=True))
        if len(self.images) >= self.count:
            self.done.set()

    def shape(self, geometry: Geometry) -> None:
        self.geometry = geometry

    def problem(self, message: str, code: str) -> None:
        self.problems.append(message)

    def frame(self, frame: EncodedFrame) -> None:
        pass

    def analysed(self, counter: int, results: dict[str, Any]) -> None:
        pass


async def grab(target: CameraTarget, count: int, timeout: float) -> tuple[list[np.ndarray], Geometry | None, list[str]]:
    """The next ``count`` decoded frames (fewer if ``timeout`` passes), the shape, any problems."""
    viewer = _Grab(count)
    feed = target.feed()
    feed.join(viewer)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(viewer.done.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        feed.leave(viewer)  # type: ignore[arg-type]
    return viewer.images, viewer.geometry or feed.geometry, viewer.problems
