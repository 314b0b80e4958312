"""Devices of the demo IOC, loaded by `manage.py serve --demo` (prefix DEMO:).

One of each kind the device socket serves: an EpicsMotor on a motor record, plain signals,
a custom Device, and a PseudoPositioner (a slit: gap and centre from two blades).
"""

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, EpicsSignal, EpicsSignalRO, PseudoPositioner, PseudoSingle, SoftPositioner
from ophyd.pseudopos import pseudo_position_argument, real_position_argument

motor1 = EpicsMotor("DEMO:mtr1", name="motor1")
motor2 = EpicsMotor("DEMO:mtr2", name="motor2")
sine = EpicsSignalRO("DEMO:sine", name="sine")
mode = EpicsSignal("DEMO:mode", name="mode")


class Stage(Device):
    """Setpoint and readback of the demo IOC's first simple motor."""

    setpoint = Cpt(EpicsSignal, "m1:sp")
    readback = Cpt(EpicsSignalRO, "m1:rbv")


stage = Stage("DEMO:", name="stage")


class Slit(PseudoPositioner):
    """Gap and centre of two soft blades."""

    gap = Cpt(PseudoSingle, limits=(0.0, 20.0))
    centre = Cpt(PseudoSingle, limits=(-10.0, 10.0))
    top = Cpt(SoftPositioner, init_pos=1.0)
    bottom = Cpt(SoftPositioner, init_pos=-1.0)

    @pseudo_position_argument
    def forward(self, pseudo):
        return self.RealPosition(top=pseudo.centre + pseudo.gap / 2, bottom=pseudo.centre - pseudo.gap / 2)

    @real_position_argument
    def inverse(self, real):
        return self.PseudoPosition(gap=real.top - real.bottom, centre=(real.top + real.bottom) / 2)


slit = Slit(name="slit")
