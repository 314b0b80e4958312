"""What the Area Detector test IOC (ad_ioc.py) publishes: AD's enums, how each data type travels
over Channel Access, and the test patterns. Pure functions, so tests compute the pixels they
expect with the same code the IOC draws with.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from caproto import AccessRights, ChannelByte, ChannelDouble, ChannelFloat, ChannelInteger, ChannelShort

# AD's enums, in AD's order (NDDataType_t, NDColorMode_t, ADImageMode, ADStatus).
DATA_TYPES = ["Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float32", "Float64"]
COLOR_MODES = ["Mono", "Bayer", "RGB1", "RGB2", "RGB3", "YUV444", "YUV422", "YUV421"]
IMAGE_MODES = ["Single", "Multiple", "Continuous"]
DETECTOR_STATES = ["Idle", "Acquire", "Readout", "Correct", "Saving", "Aborting", "Error", "Waiting",
                   "Initializing", "Disconnected", "Aborted"]
PATTERNS = ["Gradient", "Beam", "Constant"]
SERVED_COLOR_MODES = ("Mono", "Bayer", "RGB1", "RGB2", "RGB3")  # simDetector makes no YUV frames
RGB_MODES = ("RGB1", "RGB2", "RGB3")

MIN_PERIOD = 0.05  # s; frames at most 20 Hz per detector, whatever AcquirePeriod says
DEFAULT_PERIOD = 0.2
DEFAULT_SIZE = (64, 48)
MAX_SIZE = (1024, 1024)  # MaxSizeX_RBV, MaxSizeY_RBV: the simulated sensor
DEFAULT_MAX_ARRAY_BYTES = 10_000_000  # what tests/support/ioc.py gives the test clients
EPICS_EPOCH = 631152000.0  # 1990-01-01 in POSIX seconds; AD's TimeStamp counts from it



class _ReadOnly:
    """Clients read and monitor the plugin's output, they do not write it."""

    def check_access(self, hostname: str, username: str) -> AccessRights:
        return AccessRights.READ


def _read_only(channel: type) -> type:
    return type(f"ReadOnly{channel.__name__}", (_ReadOnly, channel), {})


@dataclass(frozen=True)
class CaType:
    """How one AD data type travels: its numpy type, the signed/float type CA carries, the channel."""

    numpy: type[np.generic]
    wire: type[np.generic]
    channel: type
    ca_name: str


# CA has no unsigned types: UInt16/UInt32 arrive negative above the signed maximum, and DBR_CHAR
# is unsigned in libca, so pyepics gives Int8 as uint8. Int64/UInt64 have no CA type at all.
CA_TYPES: dict[str, CaType] = {
    "Int8": CaType(np.int8, np.uint8, _read_only(ChannelByte), "DBR_CHAR"),
    "UInt8": CaType(np.uint8, np.uint8, _read_only(ChannelByte), "DBR_CHAR"),
    "Int16": CaType(np.int16, np.int16, _read_only(ChannelShort), "DBR_SHORT"),
    "UInt16": CaType(np.uint16, np.int16, _read_only(ChannelShort), "DBR_SHORT"),
    "Int32": CaType(np.int32, np.int32, _read_only(ChannelInteger), "DBR_LONG"),
    "UInt32": CaType(np.uint32, np.int32, _read_only(ChannelInteger), "DBR_LONG"),
    "Float32": CaType(np.float32, np.float32, _read_only(ChannelFloat), "DBR_FLOAT"),
    "Float64": CaType(np.float64, np.float64, _read_only(ChannelDouble), "DBR_DOUBLE"),
}


# --- frames: pure functions, also used by the tests for the expected pixels -----------------

@dataclass(frozen=True)
class Geometry:
    """Region and binning after AD's clamping to the sensor; width/height are the published size."""

    min_x: int
    min_y: int
    size_x: int
    size_y: int
    bin_x: int
    bin_y: int

    @property
    def width(self) -> int:
        return self.size_x // self.bin_x

    @property
    def height(self) -> int:
        return self.size_y // self.bin_y


def clamp_geometry(min_x: int, min_y: int, size_x: int, size_y: int, bin_x: int, bin_y: int,
                   max_size: tuple[int, int] = MAX_SIZE) -> Geometry:
    """As ADSimDetector clamps: the region stays on the sensor, binning within the region."""
    mx = min(max(int(min_x), 0), max_size[0] - 1)
    my = min(max(int(min_y), 0), max_size[1] - 1)
    sx = min(max(int(size_x), 1), max_size[0] - mx)
    sy = min(max(int(size_y), 1), max_size[1] - my)
    return Geometry(mx, my, sx, sy, min(max(int(bin_x), 1), sx), min(max(int(bin_y), 1), sy))


def _planes(pattern: str, channels: int, width: int, height: int, frame: int) -> np.ndarray:
    """The pattern as floats in [0, 1], shape (channels, height, width)."""
    if pattern == "Constant":
        return np.full((channels, height, width), 0.5)
    if pattern == "Beam":  # a Gaussian spot circling the centre once every 40 frames
        yy, xx = np.mgrid[0:height, 0:width]
        angle = 2 * np.pi * (frame % 40) / 40
        cx, cy = width / 2 + width / 4 * np.cos(angle), height / 2 + height / 4 * np.sin(angle)
        sigma = max(1.0, min(width, height) / 10)
        beam = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        return np.repeat(beam[np.newaxis], channels, axis=0)
    if channels == 1:  # Gradient: dark left to bright right
        planes = np.repeat(np.linspace(0.0, 1.0, width)[np.newaxis, np.newaxis], height, axis=1)
    else:  # red left third, green middle, blue right third
        third = np.arange(width) * 3 // width
        planes = np.stack([np.repeat((third == c)[np.newaxis], height, axis=0) for c in range(3)]).astype(float)
    side = max(1, min(width, height) // 4)  # full-scale (white) square centred in the top-left quadrant
    x0, y0 = max(0, width // 4 - side // 2), max(0, height // 4 - side // 2)
    planes[:, y0:y0 + side, x0:x0 + side] = 1.0
    return planes


@functools.lru_cache(maxsize=8)
def _static_frame(pattern: str, color_mode: str, width: int, height: int, data_type: str) -> np.ndarray:
    frame = _make_frame(pattern, color_mode, width, height, data_type, 0)
    frame.flags.writeable = False  # shared between frames; caproto does not copy read-only arrays
    return frame


def make_frame(pattern: str, color_mode: str, width: int, height: int, data_type: str,
               frame: int = 0) -> np.ndarray:
    """One frame as AD lays it out: shape (ArraySize2, ArraySize1, ArraySize0), or 2-D for Mono/Bayer.

    Full scale is the type's maximum (signed types: 0..max, never negative), 1.0 for floats.
    RGB1 is (height, width, 3), RGB2 (height, 3, width), RGB3 (3, height, width). Read-only:
    all but Beam (which moves with ``frame``) are cached.
    """
    if pattern != "Beam":
        return _static_frame(pattern, color_mode, width, height, data_type)
    return _make_frame(pattern, color_mode, width, height, data_type, frame)


def _make_frame(pattern: str, color_mode: str, width: int, height: int, data_type: str,
                frame: int) -> np.ndarray:
    dtype = CA_TYPES[data_type].numpy
    rgb = color_mode in RGB_MODES
    planes = _planes(pattern, 3 if rgb else 1, width, height, frame)
    if np.issubdtype(dtype, np.integer):
        planes = np.round(planes * float(np.iinfo(dtype).max))
    values = planes.astype(dtype)
    if not rgb:
        return values[0]
    layout = {"RGB1": (1, 2, 0), "RGB2": (1, 0, 2), "RGB3": (0, 1, 2)}[color_mode]
    return np.ascontiguousarray(values.transpose(layout))


def array_dims(color_mode: str, width: int, height: int) -> tuple[int, int, int]:
    """(ArraySize0, ArraySize1, ArraySize2) as NDStdArrays reports them; 0 for an unused dimension."""
    return {"RGB1": (3, width, height), "RGB2": (width, 3, height),
            "RGB3": (width, height, 3)}.get(color_mode, (width, height, 0))


def max_elements(data_type: str, max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES) -> int:
    """ArrayData's element count (its NELM): the sensor's RGB frame, or what the clients' byte limit holds.

    libca drops any array larger than EPICS_CA_MAX_ARRAY_BYTES (plus 24 bytes) with one line on
    stderr and nothing to the caller; 128 bytes are left for the DBR_TIME metadata.
    """
    itemsize = np.dtype(CA_TYPES[data_type].wire).itemsize
    return min(3 * MAX_SIZE[0] * MAX_SIZE[1], (max_array_bytes - 128) // itemsize)
