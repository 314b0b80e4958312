"""A C IOC (pythonSoftIOC) with one record per Channel Access type, for the lean monitor's
decoding: prints ``READY <port>`` once serving and exits with its parent.

    python -m tests.support.typed_ioc --port 5099
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np

PREFIX = "TYPED:"
# name → (what a pyepics PV reads, as JSON-able data); the records are made to hold these.
EXPECTED = {
    "double": -1.25,
    "float": 2.5,
    "short": -7,
    "enum": 2,
    "char": 200,
    "long": -123456,
    "string": "hello",
    "doubles": [1.0, 2.0, 3.0, 4.5],
}


def build() -> None:
    from softioc import builder

    builder.SetDeviceName(PREFIX.rstrip(":"))
    builder.aOut("double", initial_value=EXPECTED["double"], PREC=2)
    builder.WaveformOut("float", initial_value=np.array([EXPECTED["float"]], dtype=np.float32))
    builder.WaveformOut("short", initial_value=np.array([EXPECTED["short"]], dtype=np.int16))
    builder.mbbOut("enum", "zero", "one", "two", initial_value=EXPECTED["enum"])
    builder.WaveformOut("char", initial_value=np.array([EXPECTED["char"]], dtype=np.uint8))
    builder.longOut("long", initial_value=EXPECTED["long"])
    builder.stringOut("string", initial_value=EXPECTED["string"])
    builder.WaveformOut("doubles", initial_value=np.array(EXPECTED["doubles"], dtype=np.float64))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.environ["EPICS_CAS_INTF_ADDR_LIST"] = "127.0.0.1"
    os.environ["EPICS_CAS_SERVER_PORT"] = str(args.port)
    os.environ["EPICS_CAS_BEACON_ADDR_LIST"] = "127.0.0.1"
    os.environ["EPICS_CAS_AUTO_BEACON_ADDR_LIST"] = "NO"
    ready = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # EPICS writes its banner to stdout; keep it for the READY line alone
    from softioc import asyncio_dispatcher, builder, softioc

    build()
    builder.LoadDatabase()
    softioc.iocInit(asyncio_dispatcher.AsyncioDispatcher())
    parent = os.getppid()

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    print(f"READY {args.port}", file=ready, flush=True)
    softioc.non_interactive_ioc()


if __name__ == "__main__":
    main()
