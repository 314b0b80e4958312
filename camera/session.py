"""The /api/v1/camera-socket protocol (ophyd-websocket compatible, with additions).

The first client message names the camera (ophyd-websocket's Area Detector PV fields, or
``"camera": "sim"`` for the built-in simulation). The server answers with the settings
message ``{"x", "y", "colorMode", "dataType"}`` whenever the picture's shape changes, and
binary JPEG frames: the newest frame only, at most ``max_fps`` a second. Additions, all
optional: ``max_fps``, ``quality``, ``maxSize``, ``frameInfo`` (a ``{"frame", "timestamp",
"width", "height", "quality"}`` message before each frame), ``processing`` (results as
``{"processing": {...}, "frame": n}``). See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

from devices.bridge.ca_context import ca_executor
from devices.jsonsafe import dumps
from devices.requests import ProtocolError, decode_frame
from devices.session import Session

from .area_detector import AdSpec, AreaDetectorSource
from .encode import Output
from .feed import Analysis, CameraFeed, EncodedFrame, Feeds, Source
from .frames import Geometry
from .simulation import SimSpec, SimulationSource

_FEEDS: dict[asyncio.AbstractEventLoop, Feeds] = {}
MIN_FPS = 0.1


def feeds() -> Feeds:
    """This process's cameras (one registry per event loop)."""
    loop = asyncio.get_running_loop()
    registry = _FEEDS.get(loop)
    if registry is None:
        registry = _FEEDS[loop] = Feeds()
    return registry


def builtin_camera(name: str) -> SimSpec | None:
    """Cameras that need no configuration: ``sim`` (and ``sim:<width>x<height>``)."""
    if name == "sim":
        return SimSpec()
    if name.startswith("sim:") and "x" in name[4:]:
        w, _, h = name[4:].partition("x")
        if w.isdigit() and h.isdigit() and 1 <= int(w) <= 4096 and 1 <= int(h) <= 4096:
            return SimSpec(name=name, width=int(w), height=int(h))
    return None


class CameraSession(Session):
    """One camera socket: a viewer of one shared camera feed."""

    targets_noun = "cameras"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        s = self.settings
        self.output = Output(log=True, max_size=s.camera_max_size, quality=s.camera_quality)
        self.analysis: Analysis | None = None
        self.max_fps = s.camera_max_fps
        self.frame_info = False
        self._feed: CameraFeed | None = None
        self._last_frame = 0.0
        self.frames_sent = 0

    # --- requests -----------------------------------------------------------------------------

    async def receive(self, text: str | None, data: bytes | None = None) -> None:
        try:
            message = decode_frame(text, data, self.limits)
            if not isinstance(message, dict):
                raise ProtocolError("not_object",
                                    'Send a JSON object, e.g. {"imageArray_PV": "13SIM1:image1:ArrayData"}')
            if self._feed is None:
                await self._start(message)
            else:
                self._change(message)
        except ProtocolError as exc:
            self.error(exc)

    async def _start(self, message: dict[str, Any]) -> None:
        self._options(message)
        name = message.get("camera")
        if name is not None:
            if not isinstance(name, str) or builtin_camera(name) is None:
                raise ProtocolError("unknown_camera", f"Unknown camera {str(name)[:60]!r}; built in: 'sim', "
                                    "'sim:<width>x<height>'; or name the Area Detector PVs (imageArray_PV, ...)")
            spec: SimSpec | AdSpec = builtin_camera(name)  # type: ignore[assignment]
        else:
            try:
                spec = AdSpec.from_message(message)
            except ValueError as exc:
                raise ProtocolError("bad_field", str(exc)) from exc
            for pv in (spec.array, *(p for _, p in spec.cam)):
                if len(pv) > self.limits.max_name_length or not pv.isascii() or not pv.isprintable() or " " in pv:
                    raise ProtocolError("bad_name", f"{pv[:60]!r} is not a PV name")
            decision = await self.guard.decide(spec.array, "pv")
            if not decision.can_read:
                raise ProtocolError("forbidden", f"No read access to {spec.array}: {decision.reason}")
        if self.ended:
            return
        self._feed = feeds().feed(spec.key, lambda: self._source(spec))
        self._feed.join(self)

    def _source(self, spec: SimSpec | AdSpec) -> Source:
        if isinstance(spec, SimSpec):
            return SimulationSource(spec)
        return AreaDetectorSource(spec, executor=ca_executor(),
                                  connect_timeout_s=self.settings.camera_connect_timeout_s)

    def _options(self, message: dict[str, Any]) -> None:
        """The additions a client may set in any message (first or later)."""
        if "max_fps" in message:
            fps = message["max_fps"]
            if not isinstance(fps, int | float) or isinstance(fps, bool) or not fps > 0:
                raise ProtocolError("bad_field", "'max_fps' must be a number > 0")
            self.max_fps = max(min(float(fps), self.settings.camera_max_fps), MIN_FPS)
        if "quality" in message:
            quality = message["quality"]
            if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 95:
                raise ProtocolError("bad_field", "'quality' must be a whole number from 1 to 95")
            self.output = replace(self.output, quality=quality)
        if "maxSize" in message:
            size = message["maxSize"]
            if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size:
                raise ProtocolError("bad_field", "'maxSize' must be a whole number of pixels ≥ 16")
            self.output = replace(self.output, max_size=min(size, self.settings.camera_max_size))
        if "logNormalization" in message:
            self._set_log(message["logNormalization"])
        if "frameInfo" in message:
            self.frame_info = bool(message["frameInfo"])

    def _set_log(self, value: Any) -> None:
        if not isinstance(value, bool):
            raise ProtocolError("bad_field", "'toggleLogNormalization' must be true or false")
        self.output = replace(self.output, log=value)

    def _change(self, message: dict[str, Any]) -> None:
        if "toggleLogNormalization" in message:
            self._set_log(message["toggleLogNormalization"])
            self.reply({"logNormalization": self.output.log})
        before = (self.max_fps, self.output)
        self._options(message)
        if "max_fps" in message or (self.max_fps, self.output) != before:
            self.reply({"max_fps": self.max_fps, "quality": self.output.quality, "maxSize": self.output.max_size,
                        "logNormalization": self.output.log})
        known = {"toggleLogNormalization", "max_fps", "quality", "maxSize", "logNormalization", "frameInfo"}
        unknown = [k for k in message if k not in known]
        if unknown:
            raise ProtocolError("unknown_field", f"Unknown field(s) {', '.join(sorted(unknown))[:120]}; a camera "
                                "socket takes toggleLogNormalization, max_fps, quality, maxSize, frameInfo")

    # --- the feed's viewer side ------------------------------------------------------------------

    def due(self, now: float) -> bool:
        return not self.ended and now - self._last_frame >= 1.0 / self.max_fps - 0.002

    def frame(self, frame: EncodedFrame) -> None:
        if frame.output != self.output:
            return  # the client changed its setting meanwhile: the next frame is encoded for it
        self._last_frame = time.monotonic()
        self.frames_sent += 1
        if self.frame_info:
            info = dumps({"frame": frame.counter, "timestamp": frame.timestamp, "width": frame.size[0],
                          "height": frame.size[1], "quality": frame.output.quality})
            self.mailbox.put_latest(("frame",), (info, frame.jpeg))
        else:
            self.mailbox.put_latest(("frame",), frame.jpeg)

    def shape(self, geometry: Geometry) -> None:
        self.reply(geometry.settings_message())

    def problem(self, message: str, code: str) -> None:
        self.reply({"error": message, "code": code})

    def analysed(self, counter: int, results: dict[str, Any]) -> None:
        self.mailbox.put_latest(("analysis",), json.dumps({"processing": results, "frame": counter}))

    async def end(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.leave(self)
        await super().end()
