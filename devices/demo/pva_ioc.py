"""Demo PV Access server for `serve --demo`: a few PVs of each normative type.

    python -m devices.demo.pva_ioc --prefix DEMO:pva:

Serves on loopback only, on a free TCP port, and prints ``READY <prefix> <port>``; clients
find it through ``EPICS_PVA_NAME_SERVERS=127.0.0.1:<port>`` (a TCP name server: no UDP search
configuration of the machine is touched). PVs, after the prefix:

- ``sine``: NTScalar double, a 0.2 Hz sine updated at 10 Hz, units and limits;
- ``setpoint``: NTScalar double a client may set within its control limits -10..10;
- ``mode``: NTEnum (Off, Standby, On), settable by index;
- ``wave``: NTScalarArray of 100 doubles, a travelling wave at 2 Hz;
- ``image``: NTNDArray, 256×256 UInt8, a moving spot at 10 Hz (the camera socket shows it).

Exits when its parent dies.
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
from typing import Any

import numpy as np

SIZE = 256
SETPOINT_LIMITS = (-10.0, 10.0)
MODES = ["Off", "Standby", "On"]


def _stamp(value: Any) -> None:
    now = time.time()
    value["timeStamp.secondsPastEpoch"] = int(now)
    value["timeStamp.nanoseconds"] = int((now % 1) * 1e9)


class _Checked:
    """Stores a put that ``check`` finds no fault with; refuses it with the fault otherwise."""

    def __init__(self, check: Any) -> None:
        self._check = check

    def put(self, pv: Any, op: Any) -> None:
        sent = op.value()
        fault = self._check(sent)
        if fault:
            op.done(error=fault)
            return
        current = pv.current()
        for field in sent.changedSet():
            current[field] = sent[field]
        _stamp(current)
        pv.post(current)
        op.done()


def _setpoint_fault(sent: Any) -> str | None:
    value, (low, high) = float(sent["value"]), SETPOINT_LIMITS
    return None if low <= value <= high else f"{value:g} is outside {low:g}..{high:g}"


def _mode_fault(sent: Any) -> str | None:
    index = int(sent["value.index"])
    return None if 0 <= index < len(MODES) else f"mode {index} is not one of 0..{len(MODES) - 1}"


def build() -> dict[str, Any]:
    from p4p.nt import NTEnum, NTNDArray, NTScalar
    from p4p.server.thread import SharedPV

    sine = NTScalar("d", display=True, control=True, form=True).wrap(0.0)
    sine["display"] = {"limitLow": -1.0, "limitHigh": 1.0, "units": "V", "precision": 3}
    setpoint = NTScalar("d", display=True, control=True, form=True).wrap(0.0)
    setpoint["display"] = {"limitLow": SETPOINT_LIMITS[0], "limitHigh": SETPOINT_LIMITS[1], "units": "mm",
                           "precision": 2}
    setpoint["control"] = {"limitLow": SETPOINT_LIMITS[0], "limitHigh": SETPOINT_LIMITS[1]}
    values = {
        "sine": (sine, None),
        "setpoint": (setpoint, _Checked(_setpoint_fault)),
        "mode": (NTEnum().wrap({"index": 0, "choices": MODES}), _Checked(_mode_fault)),
        "wave": (NTScalar("ad").wrap(np.zeros(100)), None),
        "image": (_image(NTNDArray(), 0), None),
    }
    pvs = {}
    for name, (value, handler) in values.items():
        _stamp(value)
        pvs[name] = SharedPV(initial=value, handler=handler) if handler else SharedPV(initial=value)
    return pvs


def _image(nt: Any, tick: int) -> Any:
    """A Gaussian spot circling the frame."""
    angle = tick / 40.0
    cx, cy = SIZE / 2 + SIZE / 4 * math.cos(angle), SIZE / 2 + SIZE / 4 * math.sin(angle)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    spot = 230 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 14.0**2)) + 15
    value = nt.wrap(np.zeros(1, np.uint8))
    value["value"] = ("ubyteValue", spot.astype(np.uint8).ravel())
    value["dimension"] = [{"size": SIZE, "fullSize": SIZE, "binning": 1}] * 2
    value["attribute"] = [{"name": "ColorMode", "value": 0}]
    value["uniqueId"] = tick
    _stamp(value)
    return value


def run(pvs: dict[str, Any]) -> None:
    """Update the moving PVs on an absolute 10 Hz schedule, for as long as the process lives."""
    from p4p.nt import NTNDArray

    nt = NTNDArray()
    start = time.monotonic()
    tick = 0
    while True:
        tick += 1
        t = tick / 10.0
        for name, value in (("sine", math.sin(2 * math.pi * 0.2 * t)),):
            current = pvs[name].current()
            current["value"] = value
            _stamp(current)
            pvs[name].post(current)
        if tick % 5 == 0:
            wave = pvs["wave"].current()
            wave["value"] = np.sin(np.linspace(0, 4 * math.pi, 100) - t)
            _stamp(wave)
            pvs["wave"].post(wave)
        pvs["image"].post(_image(nt, tick))
        time.sleep(max(0.0, start + tick / 10.0 - time.monotonic()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prefix", default="DEMO:pva:")
    args = parser.parse_args(argv)
    from p4p.server import Server

    parent = os.getppid()
    pvs = build()
    server = Server(providers=[{args.prefix + name: pv for name, pv in pvs.items()}], isolate=True)
    threading.Thread(target=run, args=(pvs,), name="demo-pva", daemon=True).start()
    print(f"READY {args.prefix} {server.conf()['EPICS_PVAS_SERVER_PORT']}", flush=True)
    while os.getppid() == parent:
        time.sleep(0.5)


if __name__ == "__main__":
    main()
