"""Which NTNDArray PV a PV Access camera shows (no p4p import: cameras.py names it always)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PvaSpec:
    """One camera: its NTNDArray PV as a topic (``pva://NAME``)."""

    array: str

    @property
    def key(self) -> str:
        return "pva-camera:" + self.array
