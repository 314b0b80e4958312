"""A real PV Access server for tests (p4p ``Server`` with ``SharedPV``s), run as a subprocess.

``python -m tests.support.pva_server --prefix PVA:`` serves, on loopback only:

- ``double``: NTScalar double, units "mm", precision 3, display limits -10..10, control limits
  -5..5; a put outside the control limits is refused with an error message, others are stored;
- ``int``: NTScalar int32 (puts stored, of display fields too); ``string``: NTScalar string (puts stored);
- ``enum``: NTEnum with choices Off, On, Fault (puts of the index stored, if in range);
- ``array``: NTScalarArray of doubles (puts stored); ``counter``: NTScalar int32, +1 at 10 Hz;
- ``custom``: a structure that is no normative type;
- ``image``: NTNDArray, 64×48 UInt16 Mono, a new frame (uniqueId + 1) at 10 Hz; ``image_rgb``:
  32×24 UInt8 RGB1; ``image_lz4``: the Mono frame LZ4-compressed (codec "lz4");
  ``image_blosc``: a frame that claims codec "blosc" (no blosc library here: refused).

It prints ``READY <conf as JSON>`` once serving; a client built with that conf finds it. Started
with ``--conf`` (what a previous run printed) it serves on the same ports again. It exits when
the process that started it dies. ``PvaServerProcess`` runs it for fixtures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from tests.support.child import ChildProcess

DOUBLE_LIMITS = (-5.0, 5.0)  # control limits of ``double``; display limits are -10..10
ENUM_CHOICES = ["Off", "On", "Fault"]
CUSTOM_ID = "ophydsite:test/Custom:1.0"


class PvaServerProcess(ChildProcess):
    """The test server subprocess; ``stop`` kills it as a crash would, ``restart`` brings it
    back on the same ports."""

    label = "PVA server"

    def __init__(self, prefix: str = "PVA:") -> None:
        super().__init__()
        self.prefix = prefix
        self.conf: dict[str, str] | None = None  # the server's own, once started

    def pvname(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def client_conf(self) -> dict[str, str]:
        """Configuration for a p4p client ``Context`` that finds this server and nothing else."""
        assert self.conf is not None, "not started"
        keys = ("EPICS_PVA_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST", "EPICS_PVA_SERVER_PORT",
                "EPICS_PVA_BROADCAST_PORT")
        return {key: self.conf[key] for key in keys if key in self.conf}

    def command(self) -> list[str]:
        """The server, on the ports of its previous run if any."""
        command = [sys.executable, "-m", "tests.support.pva_server", "--prefix", self.prefix]
        if self.conf is not None:
            command += ["--conf", json.dumps(self.conf)]
        return command

    def ready(self, line: str) -> bool:
        if not line.startswith("READY "):
            return False
        self.conf = json.loads(line[len("READY "):])
        return True


# --- the server side (runs in the subprocess) ------------------------------------------------


def _pvs() -> dict[str, Any]:
    from p4p import Type, Value
    from p4p.nt import NTEnum, NTScalar
    from p4p.server.thread import SharedPV

    def stored(pv: SharedPV, op: Any) -> None:
        """Store what the client sent (the value, or metadata such as display.units) and
        complete its put."""
        current = pv.current()
        sent = op.value()
        for field in sent.changedSet():
            if not field.startswith("timeStamp"):
                current[field] = sent[field]
        _stamp(current)
        pv.post(current)
        op.done()

    class Handler:
        def __init__(self, check: Any = None) -> None:
            self._check = check

        def put(self, pv: SharedPV, op: Any) -> None:
            problem = self._check(op.value()) if self._check else None
            if problem:
                op.done(error=problem)
            else:
                stored(pv, op)

    def double_check(sent: Any) -> str | None:
        value = float(sent["value"])
        low, high = DOUBLE_LIMITS
        if not low <= value <= high:
            return f"value {value:g} is outside the control limits {low:g}..{high:g}"
        return None

    def enum_check(sent: Any) -> str | None:
        index = int(sent["value.index"])
        if not 0 <= index < len(ENUM_CHOICES):
            return f"index {index} is not one of 0..{len(ENUM_CHOICES) - 1}"
        return None

    double = NTScalar("d", display=True, control=True, form=True).wrap(1.5)
    double["display"] = {"limitLow": -10.0, "limitHigh": 10.0, "units": "mm", "precision": 3,
                         "description": "a double with limits"}
    double["control"] = {"limitLow": DOUBLE_LIMITS[0], "limitHigh": DOUBLE_LIMITS[1], "minStep": 0.0}
    integer = NTScalar("i", display=True, control=True).wrap(42)
    integer["display"] = {"units": "counts", "format": "%d"}
    enum = NTEnum().wrap({"index": 1, "choices": ENUM_CHOICES})
    custom_type = Type([("a", "i"), ("b", "s")], id=CUSTOM_ID)
    initial = {
        "double": (double, Handler(double_check)),
        "int": (integer, Handler()),
        "string": (NTScalar("s").wrap("hello"), Handler()),
        "enum": (enum, Handler(enum_check)),
        "array": (NTScalar("ad").wrap([1.0, 2.0, 3.0]), Handler()),
        "counter": (NTScalar("i").wrap(0), Handler()),
        "custom": (Value(custom_type, {"a": 1, "b": "x"}), Handler()),
    }
    initial.update({name: (value, Handler()) for name, value in _images(0).items()})
    pvs = {}
    for name, (value, handler) in initial.items():
        _stamp(value)
        pvs[name] = SharedPV(initial=value, handler=handler)
    return pvs


IMAGE_SIZE = (64, 48)


def mono_image(counter: int) -> Any:
    """Frame ``counter`` of ``image``: a ramp shifted by the counter (what a test can check)."""
    import numpy as np

    width, height = IMAGE_SIZE
    return ((np.arange(width * height).reshape(height, width) + counter * 7) % 4096).astype(np.uint16)


def _images(counter: int) -> dict[str, Any]:
    import lz4.block
    import numpy as np
    from p4p.nt import NTNDArray

    def ntnd(data: Any, dims: list[int], color: int, codec: str = "", original: int = 0, size: int = 0) -> Any:
        value = NTNDArray().wrap(np.zeros(1, np.uint8))
        union = {"u1": "ubyteValue", "u2": "ushortValue"}[data.dtype.str[1:]]
        value["value"] = (union, data.ravel())
        value["dimension"] = [{"size": d, "fullSize": d, "binning": 1} for d in dims]
        value["attribute"] = [{"name": "ColorMode", "value": color}]
        value["uniqueId"] = counter
        if codec:
            value["codec.name"], value["codec.parameters"] = codec, original
            value["compressedSize"], value["uncompressedSize"] = data.nbytes, size
        _stamp(value)
        return value

    mono = mono_image(counter)
    width, height = IMAGE_SIZE
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, (counter * 10) % 256, 20
    packed = np.frombuffer(lz4.block.compress(mono.tobytes(), store_size=False), np.uint8)
    return {
        "image": ntnd(mono, [width, height], 0),
        "image_rgb": ntnd(rgb, [3, 32, 24], 2),
        "image_lz4": ntnd(packed, [width, height], 0, "lz4", 6, mono.nbytes),
        "image_blosc": ntnd(packed, [width, height], 0, "blosc", 6, mono.nbytes),
    }


def _stream_images(pvs: dict[str, Any]) -> None:
    """New frames of every image PV at 10 Hz, for as long as the process lives."""
    counter = 0
    while True:
        time.sleep(0.1)
        counter += 1
        for name, value in _images(counter).items():
            pvs[name].post(value)


def _stamp(value: Any) -> None:
    if "timeStamp" not in value:
        return
    now = time.time()
    value["timeStamp.secondsPastEpoch"] = int(now)
    value["timeStamp.nanoseconds"] = int((now % 1) * 1e9)


def _count(pv: Any) -> None:
    """The counter: +1 every 0.1 s, for as long as the process lives."""
    while True:
        time.sleep(0.1)
        current = pv.current()
        current["value"] = current["value"] + 1
        _stamp(current)
        pv.post(current)


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="PVA:")
    parser.add_argument("--conf", help="the server configuration (JSON) of a previous run: same ports")
    args = parser.parse_args(argv)
    from p4p.server import Server

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    pvs = _pvs()
    providers = [{args.prefix + name: pv for name, pv in pvs.items()}]
    if args.conf:
        server = Server(providers=providers, conf=json.loads(args.conf), useenv=False)
    else:
        server = Server(providers=providers, isolate=True)
    threading.Thread(target=_count, args=(pvs["counter"],), daemon=True).start()
    threading.Thread(target=_stream_images, args=(pvs,), daemon=True).start()
    print("READY " + json.dumps(server.conf()), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
