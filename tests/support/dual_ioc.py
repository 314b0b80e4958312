"""A C IOC (pythonSoftIOC: EPICS base records, rsrv for Channel Access and pvxs' QSRV for PV
Access) serving the same records over both protocols at once, on loopback ports of its own.

    python -m tests.support.dual_ioc --ca-port 5099 --pva-port 5100 --pva-broadcast-port 5101

prints ``READY <ca port> <pva port> <pva broadcast port>`` once serving and exits with its
parent. Started again with the same ports it serves there again (an IOC restart).

Records (prefix ``DUAL:``), what they hold at start in ``INITIAL``:

- ``ai``: an ai (EGU "V", PREC 3, LOPR/HOPR -10..10);
- ``ao``: an ao (EGU "mm", PREC 2, LOPR/HOPR -10..10, DRVL/DRVH -5..5);
- ``mbbo``: an mbbo with the states in ``MBBO_STATES``;
- ``wf``: a waveform of 4 doubles (EGU "counts", PREC 1);
- ``so``: a stringout;
- ``group``: no record, a QSRV group (PV Access only) holding ``ao``'s value as ``value``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from tests.support.child import ChildProcess

PREFIX = "DUAL:"
MBBO_STATES = ["Off", "On", "Fault"]
AO_DRIVE_LIMITS = (-5.0, 5.0)
OPR_LIMITS = (-10.0, 10.0)
INITIAL = {
    "ai": 3.5,
    "ao": 1.25,
    "mbbo": 1,
    "wf": [1.0, 2.0, 3.0, 4.5],
    "so": "hello",
}
GROUP = "group"  # the QSRV group's PV name (after the prefix): only PV Access serves it
START_TIMEOUT = 30.0


def build() -> None:
    import numpy as np
    from softioc import builder

    builder.SetDeviceName(PREFIX.rstrip(":"))
    builder.aIn("ai", initial_value=INITIAL["ai"], EGU="V", PREC=3, LOPR=OPR_LIMITS[0], HOPR=OPR_LIMITS[1])
    ao = builder.aOut("ao", initial_value=INITIAL["ao"], EGU="mm", PREC=2, DRVL=AO_DRIVE_LIMITS[0],
                      DRVH=AO_DRIVE_LIMITS[1], LOPR=OPR_LIMITS[0], HOPR=OPR_LIMITS[1])
    # An NTScalar-shaped QSRV group: a PV name that PV Access serves and Channel Access does not.
    ao.add_info("Q:group", {PREFIX + GROUP: {
        "+id": "epics:nt/NTScalar:1.0",
        "value": {"+channel": "VAL", "+type": "plain", "+trigger": "*"},
    }})
    builder.mbbOut("mbbo", *MBBO_STATES, initial_value=INITIAL["mbbo"])
    builder.WaveformOut("wf", initial_value=np.array(INITIAL["wf"], dtype=np.float64), EGU="counts", PREC=1)
    builder.stringOut("so", initial_value=INITIAL["so"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca-port", type=int, required=True)
    parser.add_argument("--pva-port", type=int, required=True)
    parser.add_argument("--pva-broadcast-port", type=int, required=True)
    args = parser.parse_args()
    os.environ.update({
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_SERVER_PORT": str(args.ca_port),
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_PVAS_SERVER_PORT": str(args.pva_port),
        "EPICS_PVAS_BROADCAST_PORT": str(args.pva_broadcast_port),
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
    })
    ready = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # EPICS writes its banner to stdout; keep it for the READY line alone
    from softioc import asyncio_dispatcher, builder, softioc

    build()
    builder.LoadDatabase()
    softioc.iocInit(asyncio_dispatcher.AsyncioDispatcher(), enable_pva=True)
    parent = os.getppid()

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    print(f"READY {args.ca_port} {args.pva_port} {args.pva_broadcast_port}", file=ready, flush=True)
    softioc.non_interactive_ioc()


# --- the test side ------------------------------------------------------------------------------


class DualIocProcess(ChildProcess):
    """``python -m tests.support.dual_ioc`` on free loopback ports; ``stop`` kills it as a crash
    would, ``start`` again serves on the same ports."""

    label = "dual IOC"

    def __init__(self) -> None:
        from devices.demo.ports import free_ca_port

        super().__init__()
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_ca_port())
        self.ca_port, self.pva_port, self.pva_broadcast_port = sorted(ports)

    @staticmethod
    def pvname(suffix: str) -> str:
        return PREFIX + suffix

    def client_env(self) -> dict[str, str]:
        """CA and PVA client variables that find this IOC and nothing else."""
        return {
            "EPICS_CA_ADDR_LIST": f"127.0.0.1:{self.ca_port}",
            "EPICS_CA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_ADDR_LIST": "127.0.0.1",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": str(self.pva_port),
            "EPICS_PVA_BROADCAST_PORT": str(self.pva_broadcast_port),
        }

    def pva_conf(self) -> dict[str, str]:
        """The PVA part of ``client_env``, for a p4p ``Context(conf=..., useenv=False)``."""
        return {k: v for k, v in self.client_env().items() if k.startswith("EPICS_PVA_")}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.support.dual_ioc", "--ca-port", str(self.ca_port),
                "--pva-port", str(self.pva_port), "--pva-broadcast-port", str(self.pva_broadcast_port)]

    def ready(self, line: str) -> bool:
        return line == f"READY {self.ca_port} {self.pva_port} {self.pva_broadcast_port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        super().start(timeout)  # softioc takes longer to come up than the caproto IOCs


if __name__ == "__main__":
    main()
