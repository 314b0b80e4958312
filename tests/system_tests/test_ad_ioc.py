"""The Area Detector look-alike IOC (tests.support.ad_ioc) seen by a real pyepics client.

Frames are taken with ImageMode=Single unless a test is about the rate: one put of Acquire,
then the counters say the frame is out. Put status comes from caproto's sync client, as
pyepics reports refused puts as completed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import epics
import numpy as np
import pytest
from caproto import CaprotoError, ErrorResponseReceived
from caproto.sync.client import write as caproto_write

from tests.support.ad_frames import (
    CA_TYPES,
    COLOR_MODES,
    DATA_TYPES,
    EPICS_EPOCH,
    MIN_PERIOD,
    array_dims,
    make_frame,
    max_elements,
)
from tests.support.ad_ioc_process import AdIocProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

CAM_PVS = [
    "Acquire", "Acquire_RBV", "AcquireTime", "AcquireTime_RBV", "AcquirePeriod", "AcquirePeriod_RBV",
    "ImageMode", "ImageMode_RBV", "NumImages", "NumImages_RBV", "NumImagesCounter_RBV",
    "DetectorState_RBV", "Manufacturer_RBV", "Model_RBV", "MaxSizeX_RBV", "MaxSizeY_RBV",
    "MinX", "MinX_RBV", "MinY", "MinY_RBV", "SizeX", "SizeX_RBV", "SizeY", "SizeY_RBV",
    "BinX", "BinX_RBV", "BinY", "BinY_RBV", "ColorMode", "ColorMode_RBV", "DataType", "DataType_RBV",
    "ArrayCounter", "ArrayCounter_RBV", "ArraySizeX_RBV", "ArraySizeY_RBV", "ArraySizeZ_RBV",
    "ArraySize_RBV", "Pattern", "Pattern_RBV", "Truncate",
]
IMAGE_PVS = [
    "ArrayData", "ArraySize0_RBV", "ArraySize1_RBV", "ArraySize2_RBV", "NDimensions_RBV", "ColorMode_RBV",
    "DataType_RBV", "ArrayCounter_RBV", "UniqueId_RBV", "TimeStamp_RBV", "EnableCallbacks",
    "EnableCallbacks_RBV", "PluginType_RBV",
]
NATIVE_TYPES = {  # AD data type -> (CA field type, the numpy type pyepics hands out)
    "Int8": (epics.dbr.CHAR, np.uint8), "UInt8": (epics.dbr.CHAR, np.uint8),
    "Int16": (epics.dbr.SHORT, np.int16), "UInt16": (epics.dbr.SHORT, np.int16),
    "Int32": (epics.dbr.LONG, np.int32), "UInt32": (epics.dbr.LONG, np.int32),
    "Float32": (epics.dbr.FLOAT, np.float32), "Float64": (epics.dbr.DOUBLE, np.float64),
}
DEFAULTS: dict[str, Any] = {  # geometry first: BinX is clamped to the SizeX already set
    "MinX": 0, "MinY": 0, "SizeX": 64, "SizeY": 48, "BinX": 1, "BinY": 1, "ColorMode": "Mono",
    "Pattern": "Gradient", "Truncate": 0, "ImageMode": "Single", "NumImages": 1,
    "AcquireTime": 0.01, "AcquirePeriod": 0.2,
}


def get(ad: AdIocProcess, data_type: str, suffix: str, **kwargs: Any) -> Any:
    value = epics.caget(ad.pv(data_type, suffix), use_monitor=False, timeout=5, **kwargs)
    assert value is not None, f"no value for {ad.pv(data_type, suffix)}"
    return value


def put(ad: AdIocProcess, data_type: str, suffix: str, value: Any) -> None:
    assert epics.caput(ad.pv(data_type, suffix), value, wait=True, timeout=5) == 1


def put_status(name: str, value: Any) -> str:
    """Put with completion through caproto's client; the CA status name (retried if its circuit drops)."""
    for attempt in range(3):
        try:
            return str(caproto_write(name, [value], notify=True, timeout=5, repeater=False).status.name)
        except ErrorResponseReceived as err:
            return str(err.args[0].status.name)
        except CaprotoError:
            if attempt == 2:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def configure(ad: AdIocProcess, data_type: str, **settings: Any) -> None:
    """Stop acquiring, then put the defaults with ``settings`` (cam1 record names) over them."""
    put(ad, data_type, "cam1:Acquire", 0)
    put(ad, data_type, "image1:EnableCallbacks", "Enable")
    for record, value in (DEFAULTS | settings).items():
        put(ad, data_type, f"cam1:{record}", value)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.02)


def acquire_one(ad: AdIocProcess, data_type: str) -> int:
    """One frame in ImageMode=Single; returns its ArrayCounter once the detector is idle again."""
    before = get(ad, data_type, "cam1:ArrayCounter_RBV")
    put(ad, data_type, "cam1:Acquire", 1)
    wait_until(lambda: get(ad, data_type, "cam1:ArrayCounter_RBV") > before
               and get(ad, data_type, "cam1:Acquire_RBV", as_string=True) == "Done", what="one frame")
    return int(get(ad, data_type, "cam1:ArrayCounter_RBV"))


def shaped(ad: AdIocProcess, data_type: str) -> np.ndarray:
    """ArrayData in C order of (ArraySize2, ArraySize1, ArraySize0), as the readbacks declare it."""
    data = get(ad, data_type, "image1:ArrayData")
    sizes = [get(ad, data_type, f"image1:ArraySize{i}_RBV") for i in range(3)]
    ndims = get(ad, data_type, "image1:NDimensions_RBV")
    return np.asarray(data).reshape(sizes[:ndims][::-1])


def rgb_planes(frame: np.ndarray, color_mode: str) -> np.ndarray:
    """(3, height, width) from an RGB1/2/3 frame, written without the IOC's code."""
    return {"RGB1": lambda f: f.transpose(2, 0, 1), "RGB2": lambda f: f.transpose(1, 0, 2),
            "RGB3": lambda f: f}[color_mode](frame)


class Recorder:
    """Values of one monitored PV with their arrival times."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Any]] = []
        self._lock = threading.Lock()

    def on_value(self, value: Any = None, **_: Any) -> None:
        """Runs on the CA callback thread. Must not block."""
        with self._lock:
            self.events.append((time.monotonic(), value))

    def since(self, t0: float, until: float = float("inf")) -> list[tuple[float, Any]]:
        with self._lock:
            return [(at, v) for at, v in self.events if t0 <= at < until]


@pytest.fixture
def monitor() -> Iterator[Callable[..., Recorder]]:
    """Factory of monitored PVs; their callbacks go at teardown."""
    opened: list[epics.PV] = []

    def make(name: str) -> Recorder:
        rec = Recorder()
        pv = epics.PV(name, auto_monitor=True, callback=rec.on_value)  # arrays too: over 64k elements
        opened.append(pv)
        assert pv.wait_for_connection(timeout=5), f"{name} did not connect"
        return rec

    yield make
    for pv in opened:
        pv.disconnect()


def test_every_pv_name_exists(ad_ioc: AdIocProcess) -> None:
    names = [ad_ioc.pv(dt, f"{plugin}:{record}") for dt in CA_TYPES
             for plugin, records in (("cam1", CAM_PVS), ("image1", IMAGE_PVS)) for record in records]
    pvs = [epics.PV(name, auto_monitor=False) for name in names]
    missing = [pv.pvname for pv in pvs if not pv.wait_for_connection(timeout=5)]
    assert missing == []
    for suffix in ("image1:ArrayData", "cam1:SizeX_RBV", "image1:ArraySize0_RBV", "image1:UniqueId_RBV"):
        pv = epics.PV(ad_ioc.pv("UInt16", suffix))
        assert pv.wait_for_connection(5) and pv.read_access and not pv.write_access, suffix
    for pv in pvs:
        pv.disconnect()


def test_enums_follow_ad_order_and_data_type_is_per_detector(ad_ioc: AdIocProcess) -> None:
    for record, strings in (("ColorMode", COLOR_MODES), ("ColorMode_RBV", COLOR_MODES),
                            ("DataType", DATA_TYPES), ("DataType_RBV", DATA_TYPES)):
        pv = epics.PV(ad_ioc.pv("UInt16", f"cam1:{record}"), form="ctrl", auto_monitor=False)
        assert pv.wait_for_connection(5)
        assert list(pv.get_ctrlvars(timeout=5)["enum_strs"]) == strings, record
    assert COLOR_MODES[:5] == ["Mono", "Bayer", "RGB1", "RGB2", "RGB3"] and DATA_TYPES.index("UInt16") == 3
    for dt in CA_TYPES:
        for suffix in ("cam1:DataType", "cam1:DataType_RBV", "image1:DataType_RBV"):
            assert get(ad_ioc, dt, suffix, as_string=True) == dt
        assert get(ad_ioc, dt, "cam1:DataType") == DATA_TYPES.index(dt)


def test_data_type_cannot_be_changed(ad_ioc: AdIocProcess) -> None:
    name = ad_ioc.pv("UInt16", "cam1:DataType")
    assert put_status(name, "UInt8") == "ECA_PUTFAIL"
    assert get(ad_ioc, "UInt16", "cam1:DataType", as_string=True) == "UInt16"
    assert put_status(name, "UInt16") == "ECA_NORMAL"  # the same type is fine (and clears the alarm)


def test_array_size_is_size_over_binning(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt8", MinX=5, MinY=7, SizeX=40, SizeY=30, BinX=2, BinY=3)
    acquire_one(ad_ioc, "UInt8")
    for record, value in (("MinX_RBV", 5), ("MinY_RBV", 7), ("SizeX_RBV", 40), ("SizeY_RBV", 30),
                          ("BinX_RBV", 2), ("BinY_RBV", 3), ("ArraySizeX_RBV", 20), ("ArraySizeY_RBV", 10),
                          ("ArraySizeZ_RBV", 0), ("ArraySize_RBV", 200)):
        assert get(ad_ioc, "UInt8", f"cam1:{record}") == value, record
    assert [get(ad_ioc, "UInt8", f"image1:{r}") for r in
            ("NDimensions_RBV", "ArraySize0_RBV", "ArraySize1_RBV", "ArraySize2_RBV")] == [2, 20, 10, 0]
    frame = shaped(ad_ioc, "UInt8")
    assert frame.shape == (10, 20)
    np.testing.assert_array_equal(frame, make_frame("Gradient", "Mono", 20, 10, "UInt8"))


def test_region_is_clamped_to_the_sensor(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt8", MinX=1000, SizeX=100, BinX=50, MinY=-5, SizeY=0)
    for record, value in (("MinX", 1000), ("SizeX", 24), ("SizeX_RBV", 24), ("BinX_RBV", 24),
                          ("MinY_RBV", 0), ("SizeY_RBV", 1), ("MaxSizeX_RBV", 1024)):
        assert get(ad_ioc, "UInt8", f"cam1:{record}") == value, record
    acquire_one(ad_ioc, "UInt8")
    assert shaped(ad_ioc, "UInt8").shape == (1, 1)
    configure(ad_ioc, "UInt8")


@pytest.mark.parametrize("color_mode, ndims, dims", [
    ("Mono", 2, (64, 48, 0)), ("Bayer", 2, (64, 48, 0)),
    ("RGB1", 3, (3, 64, 48)), ("RGB2", 3, (64, 3, 48)), ("RGB3", 3, (64, 48, 3)),
])
def test_color_mode_sets_dimensions_and_layout(ad_ioc: AdIocProcess, color_mode: str, ndims: int,
                                               dims: tuple[int, int, int]) -> None:
    configure(ad_ioc, "UInt8", ColorMode=color_mode)
    acquire_one(ad_ioc, "UInt8")
    assert get(ad_ioc, "UInt8", "image1:NDimensions_RBV") == ndims
    assert tuple(get(ad_ioc, "UInt8", f"image1:ArraySize{i}_RBV") for i in range(3)) == dims
    assert dims == array_dims(color_mode, 64, 48)
    assert get(ad_ioc, "UInt8", "image1:ColorMode_RBV", as_string=True) == color_mode
    assert get(ad_ioc, "UInt8", "cam1:ColorMode_RBV", as_string=True) == color_mode
    frame = shaped(ad_ioc, "UInt8")
    np.testing.assert_array_equal(frame, make_frame("Gradient", color_mode, 64, 48, "UInt8"))
    if ndims == 2:
        bottom = frame[-1].astype(int)  # below the square: a pure gradient
        assert bottom[0] == 0 and bottom[-1] == 255 and np.all(np.diff(bottom) >= 0)
        assert frame[12, 16] == 255 and frame[12, 0] == 0  # the bright square, top left
        return
    planes = rgb_planes(frame, color_mode)
    assert planes.shape == (3, 48, 64)
    assert [tuple(planes[:, -1, x]) for x in (0, 32, 63)] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    assert tuple(planes[:, 12, 16]) == (255, 255, 255)  # the white square, top left
    assert get(ad_ioc, "UInt8", "cam1:ArraySizeZ_RBV") == 3


def test_yuv_color_modes_are_refused(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt8", ColorMode="RGB1")
    name = ad_ioc.pv("UInt8", "cam1:ColorMode")
    assert put_status(name, "YUV422") == "ECA_PUTFAIL"
    assert get(ad_ioc, "UInt8", "cam1:ColorMode_RBV", as_string=True) == "RGB1"
    assert put_status(name, "Mono") == "ECA_NORMAL"


@pytest.mark.parametrize("data_type", list(CA_TYPES))
def test_array_data_type_follows_the_data_type(ad_ioc: AdIocProcess, data_type: str) -> None:
    ftype, np_type = NATIVE_TYPES[data_type]
    pv = epics.PV(ad_ioc.pv(data_type, "image1:ArrayData"), auto_monitor=False)
    assert pv.wait_for_connection(5)
    assert epics.ca.field_type(pv.chid) == ftype
    assert epics.ca.element_count(pv.chid) == max_elements(data_type)
    configure(ad_ioc, data_type)
    acquire_one(ad_ioc, data_type)
    raw = get(ad_ioc, data_type, "image1:ArrayData")
    assert raw.dtype == np_type and raw.shape == (64 * 48,)
    # The bytes are the data type's: reinterpret, do not convert.
    expected = make_frame("Gradient", "Mono", 64, 48, data_type).ravel()
    np.testing.assert_array_equal(raw.view(CA_TYPES[data_type].numpy), expected)


@pytest.mark.parametrize("data_type, signed, unsigned", [("UInt16", np.int16, np.uint16),
                                                         ("UInt32", np.int32, np.uint32)])
def test_unsigned_values_arrive_as_twos_complement(ad_ioc: AdIocProcess, data_type: str,
                                                   signed: type, unsigned: type) -> None:
    configure(ad_ioc, data_type)
    acquire_one(ad_ioc, data_type)
    raw = get(ad_ioc, data_type, "image1:ArrayData")
    top = np.iinfo(unsigned).max
    assert raw.min() < 0 and raw[63] == -1  # the brightest pixel (top right) is all ones
    values = raw.astype(signed).view(unsigned)
    assert values[63] == top and values[0] == 0
    np.testing.assert_array_equal(values, make_frame("Gradient", "Mono", 64, 48, data_type).ravel())


@pytest.mark.timeout(30)
def test_array_counter_follows_acquire_period_and_stops(ad_ioc: AdIocProcess,
                                                       monitor: Callable[..., Recorder]) -> None:
    configure(ad_ioc, "UInt8", ImageMode="Continuous", AcquirePeriod=0.2)
    counter = monitor(ad_ioc.pv("UInt8", "cam1:ArrayCounter_RBV"))
    frames = monitor(ad_ioc.pv("UInt8", "image1:ArrayData"))
    time.sleep(0.3)  # the initial monitor events
    t0 = time.monotonic()
    put(ad_ioc, "UInt8", "cam1:Acquire", 1)
    time.sleep(2.0)
    put(ad_ioc, "UInt8", "cam1:Acquire", 0)
    time.sleep(0.3)  # a frame published just before the stop may still be on its way
    last = get(ad_ioc, "UInt8", "cam1:ArrayCounter_RBV")
    counts = [v for _, v in counter.since(t0)]
    assert 9 <= len(counts) <= 12  # frames at 0, 0.2, ... 2.0 s
    assert counts == list(range(counts[0], last + 1))
    gaps = np.diff([at for at, _ in counter.since(t0)])
    assert 0.15 < float(np.median(gaps)) < 0.25
    assert len(frames.since(t0)) == len(counts)
    assert get(ad_ioc, "UInt8", "image1:UniqueId_RBV") == last
    assert abs(get(ad_ioc, "UInt8", "image1:TimeStamp_RBV") - (time.time() - EPICS_EPOCH)) < 2.0
    t_quiet = time.monotonic()
    time.sleep(0.6)
    assert counter.since(t_quiet) == [] and get(ad_ioc, "UInt8", "cam1:ArrayCounter_RBV") == last
    assert get(ad_ioc, "UInt8", "cam1:Acquire_RBV", as_string=True) == "Done"


def test_acquire_period_has_a_floor(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt8", AcquirePeriod=0.001)
    assert get(ad_ioc, "UInt8", "cam1:AcquirePeriod") == MIN_PERIOD
    assert get(ad_ioc, "UInt8", "cam1:AcquirePeriod_RBV") == MIN_PERIOD


def test_multiple_mode_stops_after_num_images(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt8", ImageMode="Multiple", NumImages=3, AcquirePeriod=MIN_PERIOD)
    before = get(ad_ioc, "UInt8", "cam1:ArrayCounter_RBV")
    put(ad_ioc, "UInt8", "cam1:Acquire", 1)
    wait_until(lambda: get(ad_ioc, "UInt8", "cam1:Acquire", as_string=True) == "Done", what="Acquire=Done")
    time.sleep(0.2)
    assert get(ad_ioc, "UInt8", "cam1:ArrayCounter_RBV") == before + 3
    assert get(ad_ioc, "UInt8", "cam1:NumImagesCounter_RBV") == 3
    assert get(ad_ioc, "UInt8", "cam1:DetectorState_RBV", as_string=True) == "Idle"


def test_array_counter_can_be_reset(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "Int16")
    put(ad_ioc, "Int16", "cam1:ArrayCounter", 0)
    assert acquire_one(ad_ioc, "Int16") == 1
    assert get(ad_ioc, "Int16", "image1:UniqueId_RBV") == 1


@pytest.mark.timeout(30)
def test_640x480_uint16_frames_arrive_whole(ad_ioc: AdIocProcess, monitor: Callable[..., Recorder]) -> None:
    configure(ad_ioc, "UInt16", SizeX=640, SizeY=480, ImageMode="Continuous", AcquirePeriod=0.2)
    frames = monitor(ad_ioc.pv("UInt16", "image1:ArrayData"))
    time.sleep(0.3)
    t0 = time.monotonic()
    put(ad_ioc, "UInt16", "cam1:Acquire", 1)
    time.sleep(1.3)
    put(ad_ioc, "UInt16", "cam1:Acquire", 0)
    got = [v for _, v in frames.since(t0)]
    assert len(got) >= 5
    expected = make_frame("Gradient", "Mono", 640, 480, "UInt16").ravel()
    for value in got:
        assert value.shape == (640 * 480,)
        np.testing.assert_array_equal(value.astype(np.int16).view(np.uint16), expected)
    configure(ad_ioc, "UInt16")


@pytest.mark.timeout(60)
def test_largest_frames_arrive_whole_or_cut_at_nelm(ad_ioc: AdIocProcess) -> None:
    """1024x1024 RGB fits the 10 MB client limit as UInt16 (6 MB); Float64 is cut at ArrayData's NELM."""
    configure(ad_ioc, "UInt16", SizeX=1024, SizeY=1024, ColorMode="RGB1")
    acquire_one(ad_ioc, "UInt16")
    frame = shaped(ad_ioc, "UInt16")
    assert frame.shape == (1024, 1024, 3)
    np.testing.assert_array_equal(frame.view(np.uint16), make_frame("Gradient", "RGB1", 1024, 1024, "UInt16"))
    configure(ad_ioc, "UInt16")

    configure(ad_ioc, "Float64", SizeX=1024, SizeY=1024, ColorMode="RGB1")
    acquire_one(ad_ioc, "Float64")
    data = get(ad_ioc, "Float64", "image1:ArrayData")
    assert len(data) == max_elements("Float64") < 3 * 1024 * 1024
    assert tuple(get(ad_ioc, "Float64", f"image1:ArraySize{i}_RBV") for i in range(3)) == (3, 1024, 1024)
    expected = make_frame("Gradient", "RGB1", 1024, 1024, "Float64").ravel()
    np.testing.assert_array_equal(data, expected[:len(data)])
    configure(ad_ioc, "Float64")


def test_truncate_cuts_the_published_array(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt8", Truncate=100)
    acquire_one(ad_ioc, "UInt8")
    assert len(get(ad_ioc, "UInt8", "image1:ArrayData")) == 64 * 48 - 100
    assert (get(ad_ioc, "UInt8", "image1:ArraySize0_RBV"), get(ad_ioc, "UInt8", "image1:ArraySize1_RBV")) == (64, 48)
    configure(ad_ioc, "UInt8")
    acquire_one(ad_ioc, "UInt8")
    assert len(get(ad_ioc, "UInt8", "image1:ArrayData")) == 64 * 48


def test_patterns(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt16", Pattern="Constant")
    acquire_one(ad_ioc, "UInt16")
    assert set(shaped(ad_ioc, "UInt16").view(np.uint16).ravel().tolist()) == {32768}
    configure(ad_ioc, "UInt16", Pattern="Beam")
    beams = []
    for _ in range(2):
        counter = acquire_one(ad_ioc, "UInt16")
        beams.append(shaped(ad_ioc, "UInt16").view(np.uint16))
        np.testing.assert_array_equal(beams[-1], make_frame("Beam", "Mono", 64, 48, "UInt16", counter))
    assert not np.array_equal(beams[0], beams[1])  # the spot moves
    assert beams[0].max() > 60000 and beams[0].min() < 1000
    configure(ad_ioc, "UInt16")


def test_byte_frames_keep_trailing_zeros(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "UInt8", Pattern="Beam")
    counter = acquire_one(ad_ioc, "UInt8")
    expected = make_frame("Beam", "Mono", 64, 48, "UInt8", counter).ravel()
    assert expected[-1] == 0  # the spot never reaches the corner
    np.testing.assert_array_equal(get(ad_ioc, "UInt8", "image1:ArrayData"), expected)
    configure(ad_ioc, "UInt8")


def test_disabled_plugin_publishes_nothing(ad_ioc: AdIocProcess) -> None:
    configure(ad_ioc, "Int32")
    acquire_one(ad_ioc, "Int32")
    plugin_count = get(ad_ioc, "Int32", "image1:ArrayCounter_RBV")
    put(ad_ioc, "Int32", "image1:EnableCallbacks", "Disable")
    acquire_one(ad_ioc, "Int32")
    assert get(ad_ioc, "Int32", "image1:ArrayCounter_RBV") == plugin_count
    put(ad_ioc, "Int32", "image1:EnableCallbacks", "Enable")
