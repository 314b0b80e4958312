from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO


class Stage(Device):
    """A custom device: setpoint and readback of the demo IOC's second motor."""

    sp = Cpt(EpicsSignal, "m2:sp")
    rbv = Cpt(EpicsSignalRO, "m2:rbv")


stage = Stage("TST:", name="stage")
