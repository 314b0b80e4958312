"""/readyz's answer: 200 naming every check, 503 naming the failing ones."""

from __future__ import annotations

from devices.web.readiness import Check, readiness_answer


def test_all_checks_passing_is_200():
    status, body = readiness_answer({"database": Check(True, "sqlite: SELECT 1 in 1 ms"),
                                     "bridge": Check(True, "embedded, 0 channels")})
    assert status == 200 and body["status"] == "ok" and body["failing"] == []
    assert body["checks"]["database"] == {"ok": True, "detail": "sqlite: SELECT 1 in 1 ms"}


def test_a_failing_check_is_503_and_named():
    status, body = readiness_answer({"database": Check(True, "ok"), "redis": Check(True, "PING in 1 ms"),
                                     "bridge": Check(False, "shard 0/1: no heartbeat"),
                                     "startup": Check(False, "unknown: shard 0/1: no heartbeat")})
    assert status == 503 and body["status"] == "unavailable"
    assert body["failing"] == ["bridge", "startup"]
    assert body["checks"]["bridge"] == {"ok": False, "detail": "shard 0/1: no heartbeat"}
