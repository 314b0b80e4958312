from ophyd import EpicsSignal

half = EpicsSignal("TST:m3:sp", name="half_defined")
raise RuntimeError("boom: this startup file fails on purpose")
