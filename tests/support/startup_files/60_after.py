from ophyd import EpicsSignal

# Files share one namespace, in name order: m1_sp comes from 00_signals.py.
alias = EpicsSignal(m1_sp.pvname, name="m1_alias")  # noqa: F821
