"""Benchmark IOC in C records (pythonSoftIOC, EPICS base 7): the PVs of bench/ioc.py, by EPICS.

    python bench/cioc.py --prefix BENCH: --count 2000 --rate 10 --host 127.0.0.1 --port 5064

Serves over Channel Access (rsrv) on one interface and one port (EPICS_CAS_INTF_ADDR_LIST and
EPICS_CAS_SERVER_PORT are set from ``--host``/``--port``), and prints ``READY <prefix> <port>``
on stdout once serving, like bench/ioc.py, so bench/procs.py starts either the same way:

- ``<prefix>v0 .. v<M-1>``: ``calc`` records (``A+1``, A their own value) on a periodic scan
  of ``1/--rate`` seconds, so EPICS processes and posts them, not Python; each update carries
  the record's processing time as its timestamp. ``--rate`` must be one of the periods of
  base's menuScan (10, 5, 2, 1, 0.5, 0.2, 0.1 Hz).
- ``<prefix>sp0 .. sp<N-1>`` (``--setpoints``): plain ``ao`` records for the write benchmark;
  a put processes the record, which posts its monitor before the put completes.
- ``<prefix>big``: a float waveform of ``--big-size`` elements, written ``--big-rate`` times a
  second from a Python thread (the record itself is processed in C).
- ``<prefix>diag:channels``: JSON {channel name: open CA channels}, recomputed (from rsrv's
  ``casr 2`` report) on each write to ``<prefix>diag:refresh``; bench/procs.py writes, then reads.
- ``<prefix>diag:ticks``: scan rounds of the ``v`` records' period (a ``calc`` too).
- with ``--image WxH``: an Area Detector look-alike for the camera socket's Channel Access
  path, ``<prefix>image1:ArrayData`` (a 16-bit waveform of W×H elements, FTVL SHORT as AD's, a new frame from a
  ring of 8 written ``--image-rate`` times a second from a Python thread, the record processed
  in C) with its NDStdArrays readbacks (``image1:ArraySize0_RBV`` = W, ``ArraySize1_RBV`` = H,
  ``ArraySize2_RBV`` = 0, ``NDimensions_RBV`` = 2, ``ColorMode_RBV`` = Mono,
  ``DataType_RBV`` = UInt16, ``ArrayCounter_RBV``) and the ``cam1:`` settings the camera socket
  connects to as well (``MinX``, ``MinY``, ``SizeX``, ``SizeY``, ``ColorMode``, ``DataType``,
  ``BinX``, ``BinY``).

PV Access (QSRV2) stays off unless ``--pva``; with it, the IOC checks that it listens on
``EPICS_PVAS_SERVER_PORT`` when that is set (bench/procs.py sets it). The process exits on SIGTERM/SIGINT and when its
parent dies.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

# EPICS base's periodic scans (menuScan.dbd); other periods would need a rebuilt base.dbd.
SCAN_PERIODS = {10.0: ".1 second", 5.0: ".2 second", 2.0: ".5 second", 1.0: "1 second",
                0.5: "2 second", 0.2: "5 second", 0.1: "10 second"}
DIAG_LENGTH = 1 << 20  # bytes of diag:channels' JSON
CHANNEL_LINE = re.compile(r"^\s+Channel: '(.*)'$", re.MULTILINE)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prefix", default="BENCH:")
    parser.add_argument("--count", type=int, default=10, help="number of calc records v<i> (M)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help=f"scans per second of each v<i> (R): one of {sorted(SCAN_PERIODS)}")
    parser.add_argument("--setpoints", type=int, default=0, help="number of ao records sp<i>")
    parser.add_argument("--host", default="127.0.0.1", help="the one interface to serve on")
    parser.add_argument("--port", type=int, default=5064, help="CA server port (UDP and TCP)")
    parser.add_argument("--big-size", type=int, default=200000, help="elements of <prefix>big")
    parser.add_argument("--big-rate", type=float, default=10.0, help="updates per second of <prefix>big")
    parser.add_argument("--pva", action="store_true", help="also serve PV Access (QSRV2, its own ports)")
    parser.add_argument("--image", default=None, metavar="WxH",
                        help="serve <prefix>image1:ArrayData, a UInt16 Mono frame of W×H, and its readbacks")
    parser.add_argument("--image-rate", type=float, default=10.0, help="frames per second of --image")
    args = parser.parse_args(argv)
    if args.image is not None:
        try:
            width, height = (int(n) for n in args.image.lower().split("x"))
        except ValueError:
            parser.error("--image must be WxH, such as 1024x1024")
        if width < 1 or height < 1 or not 0 < args.image_rate <= 100:
            parser.error("--image needs W, H >= 1 and --image-rate in (0, 100]")
        args.image_size = (width, height)
    if args.rate not in SCAN_PERIODS:
        parser.error(f"--rate must be one of {sorted(SCAN_PERIODS)} Hz (EPICS base's scan periods)")
    if args.count < 0 or args.setpoints < 0:
        parser.error("--count and --setpoints must be >= 0")
    if args.big_size < 1 or not 0 < args.big_rate <= 100:
        parser.error("--big-size must be >= 1 and --big-rate in (0, 100]")
    return args


def configure_ca_server(host: str, port: int) -> None:
    """rsrv on one interface and port, beacons to this host's CA repeater port.

    rsrv reads these at iocInit; variables already set (by bench/procs.py) win.
    """
    os.environ["EPICS_CAS_INTF_ADDR_LIST"] = host
    os.environ["EPICS_CAS_SERVER_PORT"] = str(port)
    os.environ.setdefault("EPICS_CA_MAX_ARRAY_BYTES", "20000000")  # the big waveform
    if os.environ.get("EPICS_CA_REPEATER_PORT"):
        os.environ.setdefault("EPICS_CAS_BEACON_PORT", os.environ["EPICS_CA_REPEATER_PORT"])
    if host != "0.0.0.0":
        os.environ.setdefault("EPICS_CAS_BEACON_ADDR_LIST", host)
        os.environ.setdefault("EPICS_CAS_AUTO_BEACON_ADDR_LIST", "NO")


class ChannelReport:
    """Open CA channels per name, from rsrv's ``casr 2`` report (one ``Channel: 'name'``
    line per channel of every client), caught by pointing fd 1 at a file for the call."""

    def __init__(self, casr: Any) -> None:
        self.casr = casr
        self.libc = ctypes.CDLL(None)
        self.lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        with self.lock, tempfile.TemporaryFile() as out:
            self.libc.fflush(None)
            saved = os.dup(1)
            try:
                os.dup2(out.fileno(), 1)
                self.casr(2)
                self.libc.fflush(None)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            out.seek(0)
            text = out.read().decode(errors="replace")
        return dict(sorted(Counter(CHANNEL_LINE.findall(text)).items()))


def build_records(args: argparse.Namespace) -> dict[str, Any]:
    """The records, created with softioc's builder before iocInit; returns the Python-side ones."""
    from softioc import builder

    scan = SCAN_PERIODS[args.rate]
    prefix = args.prefix
    for index in range(args.count):
        name = f"{prefix}v{index}"
        builder.records.calc(name, CALC="A+1", INPA=f"{name}.VAL NPP", SCAN=scan, PREC=3,
                             VAL=index / 1000.0)
    for index in range(args.setpoints):
        builder.records.ao(f"{prefix}sp{index}", PREC=3)
    ticks = f"{prefix}diag:ticks"
    builder.records.calc(ticks, CALC="A+1", INPA=f"{ticks}.VAL NPP", SCAN=scan, PHAS=1)
    big = builder.WaveformIn(f"{prefix}big", length=args.big_size, datatype=float)
    # An out record: set() processes it synchronously, so the JSON is in place when the
    # write to diag:refresh completes.
    channels = builder.longStringOut(f"{prefix}diag:channels", length=DIAG_LENGTH)
    records: dict[str, Any] = {"big": big, "channels": channels}
    if args.image is not None:
        records.update(build_image(prefix, *args.image_size))
    return records


COLOR_MODES = ["Mono", "Bayer", "RGB1", "RGB2", "RGB3", "YUV444", "YUV422", "YUV421"]
DATA_TYPES = ["Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
              "Float32", "Float64"]


def build_image(prefix: str, width: int, height: int) -> dict[str, Any]:
    """The image array, its NDStdArrays readbacks and the cam1 settings (AD's names)."""
    from softioc import builder

    def mbb(name: str, strings: list[str], value: int) -> None:
        builder.mbbIn(name, *strings[:16], initial_value=value)

    plugin, cam = f"{prefix}image1:", f"{prefix}cam1:"
    # FTVL SHORT, as ADCore's commonPlugins.cmd loads NDStdArrays for 16-bit data: CA has no
    # unsigned 16-bit type (base would serve USHORT as DBR_LONG, twice the bytes); clients view
    # the signed array as DataType_RBV says.
    array = builder.WaveformIn(f"{plugin}ArrayData", length=width * height, datatype="int16")
    for field, value in (("ArraySize0_RBV", width), ("ArraySize1_RBV", height),
                         ("ArraySize2_RBV", 0), ("NDimensions_RBV", 2)):
        builder.longIn(plugin + field, initial_value=value)
    mbb(f"{plugin}ColorMode_RBV", COLOR_MODES, 0)
    mbb(f"{plugin}DataType_RBV", DATA_TYPES, DATA_TYPES.index("UInt16"))
    counter = builder.longIn(f"{plugin}ArrayCounter_RBV", initial_value=0)
    for field, value in (("MinX", 0), ("MinY", 0), ("SizeX", width), ("SizeY", height),
                         ("BinX", 1), ("BinY", 1)):
        builder.longIn(cam + field, initial_value=value)
    mbb(f"{cam}ColorMode", COLOR_MODES, 0)
    mbb(f"{cam}DataType", DATA_TYPES, DATA_TYPES.index("UInt16"))
    return {"image": array, "image_counter": counter}


def publish_image(array: Any, counter: Any, width: int, height: int, rate: float) -> None:
    """Frames of a ring of 8 (a ramp, shifted per frame) at ``rate`` on an absolute schedule."""
    import numpy as np

    base = np.arange(width * height, dtype=np.uint32)
    ring = [((base + 997 * i) % 4096).astype(np.uint16).view(np.int16) for i in range(8)]
    start = time.monotonic()
    tick = 0
    while True:
        tick += 1
        array.set(ring[tick % len(ring)])
        counter.set(tick)
        time.sleep(max(0.0, start + tick / rate - time.monotonic()))


def publish_big(record: Any, size: int, rate: float) -> None:
    """Write the big waveform at ``rate`` on an absolute schedule (a daemon thread)."""
    import numpy as np

    data = np.zeros(size)
    start = time.monotonic()
    tick = 0
    while True:
        tick += 1
        data.fill(float(tick))
        record.set(data)
        time.sleep(max(0.0, start + tick / rate - time.monotonic()))


def exit_with_parent() -> None:
    """SIGTERM ourselves once reparented: the benchmark that started us died (a daemon thread)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def listening(port: int) -> bool:
    """Whether this process listens on TCP ``port`` (rsrv silently takes another one if not)."""
    import psutil

    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
               for c in psutil.Process().net_connections("tcp"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_ca_server(args.host, args.port)
    # EPICS prints its banner and reports on stdout: keep stdout for the READY line alone.
    ready_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    from softioc import asyncio_dispatcher, builder, softioc

    records = build_records(args)
    report = ChannelReport(softioc.casr)

    def refresh(_value: int) -> None:
        records["channels"].set(json.dumps(report.counts()))

    builder.longOut(f"{args.prefix}diag:refresh", initial_value=0, on_update=refresh,
                    always_update=True, blocking=True)
    builder.LoadDatabase()
    softioc.iocInit(asyncio_dispatcher.AsyncioDispatcher(), enable_pva=args.pva)

    if not listening(args.port):
        print(f"FAILED TCP port {args.port} is in use", file=ready_out, flush=True)
        softioc.safeEpicsExit(1)
    pva_port = os.environ.get("EPICS_PVAS_SERVER_PORT")
    if args.pva and pva_port and not listening(int(pva_port)):
        print(f"FAILED PVA TCP port {pva_port} is not ours", file=ready_out, flush=True)
        softioc.safeEpicsExit(1)
    if args.image is not None:
        threading.Thread(target=publish_image, args=(records["image"], records["image_counter"],
                                                     *args.image_size, args.image_rate),
                         name="image", daemon=True).start()
    threading.Thread(target=publish_big, args=(records["big"], args.big_size, args.big_rate),
                     name="big", daemon=True).start()
    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()
    print(f"READY {args.prefix} {args.port}", file=ready_out, flush=True)
    softioc.non_interactive_ioc()  # until SIGTERM/SIGINT, then epicsExit


if __name__ == "__main__":
    main()
