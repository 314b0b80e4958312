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

import json
import time
from dataclasses import replace
from typing import Any

from devices.core import ProtocolError, decode_frame, dumps, name_problem
from devices.metrics import instruments as metrics
from devices.sockets import Session

from .analysis import analysis_for
from .cameras import camera_from_pvs, camera_named
from .encode import Output
from .feed import Analysis, CameraFeed, EncodedFrame
from .frames import Geometry

MIN_FPS = 0.1


class CameraSession(Session):
    """One camera socket: a viewer of one shared camera feed."""

    targets_noun = "cameras"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        s = self.settings
        self.output = Output(log=True, max_size=s.camera_max_size, quality=s.camera_quality)
        self.analysis: Analysis | None = None
        self.wants_image = False
        self.max_fps = s.camera_max_fps
        self.frame_info = False
        self._feed: CameraFeed | None = None
        self._credit = 1.0  # frames this viewer may take now (a bucket of one, filled at max_fps)
        self._credit_at = time.monotonic()
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
                await self._change(message)
        except ProtocolError as exc:
            self.error(exc)

    async def _start(self, message: dict[str, Any]) -> None:
        self._options(message)
        await self._processing(message)
        name = message.get("camera")
        if name is not None:
            target = await camera_named(name) if isinstance(name, str) and len(name) <= 100 else None
            if target is None:
                raise ProtocolError("unknown_camera", f"Unknown camera {str(name)[:60]!r}; configured cameras are "
                                    "listed at GET /api/v1/cameras; built in: 'sim', 'sim:<width>x<height>'; or "
                                    "name the Area Detector PVs (imageArray_PV, ...)")
        else:
            try:
                target = camera_from_pvs(message)
            except ValueError as exc:
                raise ProtocolError("bad_field", str(exc)) from exc
            spec = target.spec
            for pv in (target.array_pv or "", *(p for _, p in getattr(spec, "cam", ()))):
                if name_problem(pv, self.limits.max_name_length) is not None:
                    raise ProtocolError("bad_name", f"{pv[:60]!r} is not a PV name")
        if target.array_pv is not None:
            decision = await self.guard.decide(target.array_pv, "pv")
            if not decision.can_read:
                raise ProtocolError("forbidden", f"No read access to {target.array_pv}: {decision.reason}")
        elif self.guard.policy.auth_required and not self.guard.principal.username:
            raise ProtocolError("forbidden", "Cameras need a login or an API token (OAS_AUTH_REQUIRED)")
        if self.ended:
            return
        self._feed = target.feed()
        self._feed.join(self)

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

    async def _processing(self, message: dict[str, Any]) -> None:
        if "processing" not in message:
            return
        try:
            self.analysis = await analysis_for(message["processing"])
        except ValueError as exc:
            raise ProtocolError("bad_processing", str(exc)) from exc

    async def _change(self, message: dict[str, Any]) -> None:
        if "processing" in message:
            await self._processing(message)
            self.reply({"processing": "on" if self.analysis is not None else "off"})
        if "toggleLogNormalization" in message:
            self._set_log(message["toggleLogNormalization"])
            self.reply({"logNormalization": self.output.log})
        before = (self.max_fps, self.output)
        self._options(message)
        if "max_fps" in message or (self.max_fps, self.output) != before:
            self.reply({"max_fps": self.max_fps, "quality": self.output.quality, "maxSize": self.output.max_size,
                        "logNormalization": self.output.log})
        known = {"toggleLogNormalization", "max_fps", "quality", "maxSize", "logNormalization", "frameInfo",
                 "processing"}
        unknown = [k for k in message if k not in known]
        if unknown:
            raise ProtocolError("unknown_field", f"Unknown field(s) {', '.join(sorted(unknown))[:120]}; a camera "
                                "socket takes toggleLogNormalization, max_fps, quality, maxSize, frameInfo, processing")

    # --- the feed's viewer side ------------------------------------------------------------------

    def due(self, now: float) -> bool:
        """At most ``max_fps`` on average and never a burst: a credit of one frame refills at
        that rate (measuring from the last send would alias: a 20 Hz camera watched at 10 a
        second gave 6.7, every third frame, because encoding delays the send)."""
        if self.ended:
            return False
        self._credit = min(1.0, self._credit + (now - self._credit_at) * self.max_fps)
        self._credit_at = now
        if self._credit < 0.95:  # a little early is the same frame period, within jitter
            return False
        self._credit -= 1.0
        return True

    def frame(self, frame: EncodedFrame) -> None:
        if frame.output != self.output:
            return  # the client changed its setting meanwhile: the next frame is encoded for it
        self.frames_sent += 1
        metrics.CAMERA_SENT.inc()
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

    def image(self, counter: int, image: Any) -> None:
        """Viewers of the socket get JPEGs, not raw frames."""

    def status_targets(self) -> list[str]:
        """The camera watched (its feed), for the status page."""
        return [self._feed.key] if self._feed is not None else []

    async def end(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.leave(self)
        await super().end()
