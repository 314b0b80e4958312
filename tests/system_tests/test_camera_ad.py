"""The camera socket against the Area Detector-like caproto IOC (tests/support/ad_ioc.py):
frames decoded back with Pillow for every data type and colour mode, binning followed from
the array plugin's readbacks, ophyd-websocket's default PV names, bad input."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest
from django.conf import settings

from camera.encode import to_8bit
from tests.support.ad_frames import make_frame
from tests.system_tests.test_camera_socket import Viewer, camera_feeds

pytestmark = [pytest.mark.system, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]
TYPES = ["Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Float32", "Float64"]


def put(ad_ioc, data_type: str, suffix: str, value) -> None:
    import epics

    assert epics.caput(ad_ioc.pv(data_type, suffix), value, wait=True, timeout=10)


@pytest.fixture
def detector(ad_ioc):
    """Put detectors back to a small Mono gradient after each test."""
    touched: list[str] = []

    def use(data_type: str, **settings_: object) -> str:
        touched.append(data_type)
        put(ad_ioc, data_type, "cam1:Acquire", 0)
        values = {"ColorMode": 0, "SizeX": 64, "SizeY": 48, "BinX": 1, "BinY": 1, "Pattern": 0, "Truncate": 0,
                  "AcquirePeriod": 0.1, **settings_}
        for key, value in values.items():
            put(ad_ioc, data_type, f"cam1:{key}", value)
        put(ad_ioc, data_type, "cam1:ImageMode", 2)  # Continuous
        put(ad_ioc, data_type, "cam1:Acquire", 1)
        return ad_ioc.pv(data_type, "image1:ArrayData")

    yield use
    for data_type in touched:
        put(ad_ioc, data_type, "cam1:Acquire", 0)


@pytest.mark.parametrize("data_type", TYPES)
async def test_mono_frames_of_every_data_type_keep_the_pattern(detector, data_type):
    array = detector(data_type)
    async with Viewer() as viewer:
        await viewer.send({"imageArray_PV": array, "logNormalization": False})
        shape = await viewer.json(lambda m: "x" in m)
        assert shape == {"x": 64, "y": 48, "colorMode": "Mono", "dataType": data_type}
        picture = await viewer.frame()
        assert picture.mode == "L" and picture.size == (64, 48)
        pixels = np.asarray(picture, dtype=float)
        lower = pixels[30:, :]  # below the bright square: the gradient alone
        columns = lower.mean(axis=0)
        assert columns[-4:].mean() > columns[:4].mean() + 150, columns  # dark left, bright right
        assert np.all(np.diff(columns[4:-4]) > -12)  # increasing (JPEG blurs a little)
        expected = to_8bit(make_frame("Gradient", "Mono", 64, 48, data_type), log=False).astype(float)
        assert np.abs(pixels - expected).mean() < 6  # the IOC's frame, pixel for pixel (JPEG error aside)
        assert pixels[9:15, 13:19].mean() > 230  # the full-scale square in the top-left quadrant


@pytest.mark.parametrize("mode", ["RGB1", "RGB2", "RGB3"])
@pytest.mark.parametrize("data_type", TYPES)
async def test_rgb_modes_put_each_channel_where_it_belongs(detector, mode, data_type):
    array = detector(data_type, ColorMode={"RGB1": 2, "RGB2": 3, "RGB3": 4}[mode])
    async with Viewer() as viewer:
        await viewer.send({"imageArray_PV": array, "logNormalization": False})
        shape = await viewer.json(lambda m: "x" in m and m["colorMode"] == mode, timeout=15)
        assert (shape["x"], shape["y"], shape["dataType"]) == (64, 48, data_type)
        picture = await viewer.frame()
        assert picture.mode == "RGB" and picture.size == (64, 48)
        rgb = np.asarray(picture, dtype=float)[30:, :, :]  # below the white square
        thirds = [rgb[:, 2:19], rgb[:, 23:40], rgb[:, 45:62]]
        for channel, part in enumerate(thirds):  # red left, green middle, blue right
            means = part.reshape(-1, 3).mean(axis=0)
            assert means.argmax() == channel and means[channel] > 150, (mode, channel, means)
        layout = make_frame("Gradient", mode, 64, 48, data_type)
        expected = to_8bit({"RGB1": layout, "RGB2": layout.transpose(0, 2, 1),
                            "RGB3": layout.transpose(1, 2, 0)}[mode], log=False).astype(float)
        assert np.abs(np.asarray(picture, dtype=float) - expected).mean() < 12


async def test_binning_changes_the_picture_through_the_array_readbacks(detector, ad_ioc):
    array = detector("UInt16")
    async with Viewer() as viewer:
        await viewer.send({"imageArray_PV": array})
        assert (await viewer.json(lambda m: "x" in m))["x"] == 64
        await viewer.frame()
        put(ad_ioc, "UInt16", "cam1:BinX", 2)
        put(ad_ioc, "UInt16", "cam1:BinY", 2)
        shape = await viewer.json(lambda m: "x" in m and (m["x"], m["y"]) == (32, 24), timeout=15)
        assert shape["dataType"] == "UInt16"  # a settings message for each readback that changed
        for _ in range(20):
            picture = await viewer.frame()
            if picture.size == (32, 24):
                break
        assert picture.size == (32, 24)


async def test_defaults_follow_the_array_prefix_and_two_viewers_share_the_encode(detector):
    array = detector("UInt8")
    async with Viewer() as a, Viewer() as b:
        for viewer in (a, b):
            await viewer.send({"imageArray_PV": array})  # cam1:... PVs derived from AD_UInt8:
            await viewer.json(lambda m: "x" in m)
        for _ in range(3):
            await a.frame()
            await b.frame()
        [key] = [k for k in camera_feeds() if array in k]
        stats = camera_feeds()[key].stats
        assert len(stats.encoded) == 1 and sum(stats.encoded.values()) <= stats.decoded
    await asyncio.sleep(0.2)
    assert not [k for k in camera_feeds() if array in k]  # the channels close with the last viewer


async def test_bad_input_from_the_detector_and_the_client(detector, ad_ioc):
    array = detector("UInt16")
    async with Viewer() as viewer:
        await viewer.send({"imageArray_PV": array})
        await viewer.frame()
        put(ad_ioc, "UInt16", "cam1:Truncate", 100)  # arrays shorter than their declared shape
        problem = await viewer.json(lambda m: "error" in m, timeout=15)
        assert problem["code"] == "bad_frame" and "needs 3072" in problem["error"]
        put(ad_ioc, "UInt16", "cam1:Truncate", 0)
        await viewer.frame(timeout=15)  # and it recovers by itself
        put(ad_ioc, "UInt16", "cam1:ColorMode", 1)  # Bayer: not shown
        unsupported = await viewer.json(lambda m: "error" in m, timeout=15)
        assert unsupported["code"] == "bad_mode" and "Bayer" in unsupported["error"]

    original = settings.OAS
    settings.OAS = replace(original, camera_connect_timeout_s=0.5)
    try:
        async with Viewer() as lost:
            await lost.send({"imageArray_PV": "NOWHERE:image1:ArrayData"})
            missing = await lost.json(lambda m: "error" in m, timeout=10)
            assert missing["code"] == "not_connected" and "NOWHERE:image1:ArrayData" in missing["error"]
            await lost.send({"toggleLogNormalization": False})  # still serving the socket
            assert (await lost.json(lambda m: "logNormalization" in m))["logNormalization"] is False
    finally:
        settings.OAS = original
