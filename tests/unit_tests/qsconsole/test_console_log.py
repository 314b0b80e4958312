"""The console ring: numbering from the Queue Server's time, replay after an entry."""

from __future__ import annotations

from qsconsole.log import ConsoleLog


def test_numbers_come_from_the_publish_time_and_always_increase():
    log = ConsoleLog(10)
    a = log.append(1796153166.6326115, "step 1")
    b = log.append(1796153166.6326413, "\n")
    same = log.append(1796153166.6326413, "again")  # same stamp: still a new, larger number
    older = log.append(1.0, "clock went back")
    assert a.seq == 1796153166632611 and b.seq == 1796153166632641
    assert same.seq == b.seq + 1 and older.seq == same.seq + 1
    # another process numbering the same messages gets the same numbers
    other = ConsoleLog(10)
    assert [other.append(1796153166.6326115, "step 1").seq, other.append(1796153166.6326413, "\n").seq] == [
        a.seq, b.seq]


def test_replay_after_an_entry_and_what_the_ring_has_lost():
    log = ConsoleLog(5)
    entries = [log.append(100.0 + i, f"line {i}") for i in range(8)]  # 0..2 pushed out
    newer, complete = log.after(entries[4].seq, 100)
    assert [e.msg for e in newer] == ["line 5", "line 6", "line 7"] and complete
    newer, complete = log.after(entries[1].seq, 100)  # 2 is gone: not all of it
    assert [e.msg for e in newer] == [f"line {i}" for i in range(3, 8)] and not complete
    newer, complete = log.after(entries[2].seq, 100)  # exactly the last one lost: nothing missing
    assert len(newer) == 5 and complete
    newer, complete = log.after(entries[3].seq, 2)  # cut by the limit: the newest two, not complete
    assert [e.msg for e in newer] == ["line 6", "line 7"] and not complete
    assert [e.msg for e in log.last(2)] == ["line 6", "line 7"] and log.last(0) == []
