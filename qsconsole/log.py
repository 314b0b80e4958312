"""The console's recent past: a bounded ring of numbered entries.

Entry numbers (``seq``) come from the Queue Server's own timestamps (microseconds), made
strictly increasing, so they mean the same in every server process and across a bridge
restart: a client that reconnects anywhere can ask for what came after the last one it saw.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    seq: int
    time: float
    msg: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "msg": self.msg}


class ConsoleLog:
    """The last ``size`` console entries."""

    def __init__(self, size: int) -> None:
        self._entries: deque[Entry] = deque(maxlen=max(size, 1))
        self.last_seq = 0
        self.dropped_upto = 0  # seq of the newest entry pushed out of the ring

    def append(self, time: float, msg: str) -> Entry:
        seq = max(int(time * 1_000_000), self.last_seq + 1)
        self.last_seq = seq
        if len(self._entries) == self._entries.maxlen:
            self.dropped_upto = self._entries[0].seq
        entry = Entry(seq, time, msg)
        self._entries.append(entry)
        return entry

    def after(self, seq: int, limit: int) -> tuple[list[Entry], bool]:
        """Entries newer than ``seq`` (at most the newest ``limit``), and whether that is all
        of them (False when some had already left the ring, or ``limit`` cut them)."""
        newer = [e for e in self._entries if e.seq > seq]
        complete = seq >= self.dropped_upto
        if len(newer) > limit:
            newer, complete = newer[-limit:], False
        return newer, complete

    def last(self, count: int) -> list[Entry]:
        if count <= 0:
            return []
        return list(self._entries)[-count:]

    @property
    def size(self) -> int:
        return self._entries.maxlen or 1

    def __len__(self) -> int:
        return len(self._entries)
