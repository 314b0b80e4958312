"""/api/v1/camera-socket through the in-process server: settings, JPEG frames decoded back
with Pillow, per-client options, one encode shared by viewers, release after the last one.

These use the built-in simulation camera (no IOC); tests/system_tests/test_camera_ad.py runs
the same socket against the Area Detector-like caproto IOC.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import numpy as np
import pytest
from channels.testing import WebsocketCommunicator
from PIL import Image

pytestmark = [pytest.mark.system, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]
PATH = "/api/v1/camera-socket"


class Viewer:
    """A camera-socket client that keeps text and binary messages apart."""

    def __init__(self) -> None:
        from ophydsite.asgi import application

        self.comm = WebsocketCommunicator(application, PATH)
        self.texts: list[dict[str, Any]] = []  # every text message, for a timeout's report

    async def __aenter__(self) -> Viewer:
        connected, _ = await self.comm.connect(timeout=10)
        assert connected
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.comm.disconnect()

    async def send(self, message: Any) -> None:
        await self.comm.send_to(text_data=json.dumps(message))

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | bytes:
        while True:
            try:
                event = await asyncio.wait_for(self.comm.output_queue.get(), timeout)
            except TimeoutError:
                stats = {key: feed.stats for key, feed in camera_feeds().items()}
                raise AssertionError(f"nothing more within {timeout:.1f} s; text messages so far: "
                                     f"{self.texts[-8:]}; feeds: {stats}; channels: {channel_states()}\n"
                                     f"{ca_thread_stacks()}") from None
            if event["type"] == "websocket.send":
                if event.get("bytes") is not None:
                    return event["bytes"]
                message = json.loads(event["text"])
                self.texts.append(message)
                return message
            if event["type"] == "websocket.close":
                raise ConnectionError(f"closed with {event.get('code')}")

    async def json(self, where=lambda m: True, timeout: float = 10.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.next(max(deadline - loop.time(), 0.01))
            if isinstance(msg, dict) and where(msg):
                return msg

    async def frame(self, timeout: float = 10.0) -> Image.Image:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.next(max(deadline - loop.time(), 0.01))
            if isinstance(msg, bytes):
                picture = Image.open(io.BytesIO(msg))
                picture.load()
                return picture


def channel_states() -> dict[str, object]:
    """pyepics' view of the camera feeds' channels: (connected, libca's channel state)."""
    from epics import ca

    states = {}
    for key in camera_feeds():
        for name in key.partition(":")[2].replace("|", ",").split(","):
            entry = ca.get_cache(name)
            if entry is None:
                states[name] = "no channel"
            elif getattr(entry, "chid", None) is None:
                states[name] = f"being created: {type(entry).__name__}"
            else:
                states[name] = (entry.conn, ca.state(entry.chid))
    return states


def ca_thread_stacks() -> str:
    """Where threads that are in pyepics or the CA sources are (a stalled channel open)."""
    import sys
    import traceback

    out = []
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        if "epics" in stack or "ca_source" in stack:
            out.append(f"thread {ident}:\n{stack}")
    return "\n".join(out)


def camera_feeds():
    from camera.cameras import feeds

    return feeds().feeds


async def test_simulation_camera_settings_then_jpeg_frames():
    async with Viewer() as viewer:
        await viewer.send({"camera": "sim:64x48", "max_fps": 20, "frameInfo": True})
        settings = await viewer.json()
        assert settings == {"x": 64, "y": 48, "colorMode": "Mono", "dataType": "UInt16"}
        info = await viewer.json(lambda m: "frame" in m)
        picture = await viewer.frame()
        assert picture.format == "JPEG" and picture.mode == "L" and picture.size == (64, 48)
        assert (info["width"], info["height"]) == (64, 48) and info["quality"] == 85
        pixels = np.asarray(picture, dtype=float)
        assert pixels.max() > 150 and pixels.min() < pixels.max() / 2  # a bright beam on a dark field


async def test_two_viewers_share_each_encode_and_the_log_toggle_is_per_client():
    async with Viewer() as a, Viewer() as b:
        for v in (a, b):
            await v.send({"camera": "sim:80x60", "max_fps": 30})
            await v.json()
        key = next(k for k in camera_feeds() if "80x60" in k)
        feed = camera_feeds()[key]
        for _ in range(5):
            await a.frame()
            await b.frame()
        shared = dict(feed.stats.encoded)
        assert len(shared) == 1  # one output setting ...
        [(output, encodes)] = shared.items()
        assert output.log is True
        assert encodes <= feed.stats.decoded  # ... encoded once per frame for both viewers

        await a.send({"toggleLogNormalization": False})
        assert (await a.json(lambda m: "logNormalization" in m))["logNormalization"] is False
        for _ in range(4):
            await a.frame()
            await b.frame()
        logs = {o.log for o in feed.stats.encoded}
        assert logs == {True, False}  # b still gets log frames, a linear ones
    await asyncio.sleep(0.1)
    assert key not in camera_feeds()  # the source stops with the last viewer


async def test_max_fps_limits_a_viewer_and_frames_are_the_newest():
    async with Viewer() as slow:
        await slow.send({"camera": "sim:32x32", "max_fps": 2, "frameInfo": True})
        await slow.json()
        counters = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(4):
            counters.append((await slow.json(lambda m: "frame" in m))["frame"])
            await slow.frame()
        elapsed = loop.time() - started
        assert elapsed > 1.2  # 2 a second: 4 frames take at least ~1.5 s
        assert all(b - a >= 3 for a, b in zip(counters, counters[1:], strict=False))  # 10 Hz source: skips


async def test_bad_first_messages_get_errors_and_the_socket_stays_usable():
    async with Viewer() as viewer:
        for message, code in (([1, 2], "not_object"), ({"camera": "nope"}, "unknown_camera"),
                              ({"imageArray_PV": 5}, "bad_field"), ({"camera": "sim", "max_fps": 0}, "bad_field"),
                              ({"imageArray_PV": "has space:image1:ArrayData"}, "bad_name")):
            await viewer.send(message)
            error = await viewer.json()
            assert error["code"] == code and error["error"], (message, error)
        await viewer.comm.send_to(text_data="{not json")
        assert (await viewer.json())["code"] == "bad_json"
        await viewer.send({"camera": "sim:16x16"})
        assert (await viewer.json())["x"] == 16
        await viewer.frame()
        await viewer.send({"bogus": 1})
        assert (await viewer.json(lambda m: "error" in m))["code"] == "unknown_field"


async def test_a_viewer_that_stops_reading_does_not_slow_the_others(tmp_path):
    """Through uvicorn (real TCP flow control): one viewer's socket stops being read, its
    buffers fill, and the reading viewer still gets its rate; the stuck one is cut off."""
    import socket
    import time

    import websockets

    from tests.support.server import ServerProcess

    proc = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/cam.sqlite3", "OAS_CLIENT_STALL_TIMEOUT_S": "3",
                          "OAS_CLIENT_CLOSE_WAIT_S": "1"}, log_path=tmp_path / "server.log").start()
    first = {"camera": "sim:1024x768@20", "max_fps": 10, "maxSize": 1024, "quality": 95}
    try:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", proc.port))
        stuck = await websockets.connect(f"{proc.ws}{PATH}", sock=raw, max_queue=1, max_size=None,
                                         ping_interval=None)
        await stuck.send(json.dumps(first))  # and never read again
        async with websockets.connect(f"{proc.ws}{PATH}", max_size=None) as reader:
            await reader.send(json.dumps(first))
            while not isinstance(await asyncio.wait_for(reader.recv(), 10), bytes):
                pass  # counted from the first frame on
            frames, sizes = 0, 0
            started = time.monotonic()
            while time.monotonic() - started < 6:
                message = await asyncio.wait_for(reader.recv(), 10)
                if isinstance(message, bytes):
                    frames += 1
                    sizes += len(message)
            rate = frames / (time.monotonic() - started)
            assert rate > 7, (rate, proc.output())  # asked for 10 a second, the source makes 20
            assert sizes / frames > 20000  # big frames: the stuck viewer's buffers did fill
        deadline = time.monotonic() + 20
        while "closing stuck client" not in proc.output() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert "closing stuck client" in proc.output()
        stuck.transport.abort()
    finally:
        proc.stop()
