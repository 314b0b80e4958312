"""ophyd-async devices of the demo, beside the ophyd v1 ones (prefix DEMO:, DEMO:pva:).

A motor record through ophyd-async's Motor (Channel Access, aioca), and a readable device on the
demo's PV Access server: the device socket serves both like any ophyd device.
"""

from ophyd_async.core import StandardReadable
from ophyd_async.epics.core import epics_signal_r, epics_signal_rw
from ophyd_async.epics.motor import Motor


class PvaBeam(StandardReadable):
    """The demo PVA server's sine (read) and setpoint (set)."""

    def __init__(self, prefix: str, name: str = "") -> None:
        with self.add_children_as_readables():
            self.intensity = epics_signal_r(float, f"pva://{prefix}sine")
        self.setpoint = epics_signal_rw(float, f"pva://{prefix}setpoint")
        super().__init__(name=name)


async_motor = Motor("DEMO:mtr1")
pva_beam = PvaBeam("DEMO:pva:")
