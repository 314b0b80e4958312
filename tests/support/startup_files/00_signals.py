from ophyd import EpicsSignal, EpicsSignalRO

m1_sp = EpicsSignal("TST:m1:sp", name="m1_sp")
m1_rbv = EpicsSignalRO("TST:m1:rbv", name="m1_rbv")  # 0.1.1 skipped module-level EpicsSignalRO
