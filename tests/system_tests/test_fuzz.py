"""Thousands of random and malformed messages to each socket: no crash, no unhandled
exception in the log, every reply well-formed, and the socket still serves a real
subscription afterwards.

Messages come from a seeded generator (the seed is in the test id, so a failure replays):
valid JSON of every type, objects with real and made-up actions and fields holding values of
every type, truncated and broken JSON, binary frames, oversized frames. Targets are names no
IOC serves and read-only PVs of the demo IOC, so nothing the other tests rely on is changed.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import string
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from devices.services.runtime import get_hub

pytestmark = [pytest.mark.system, pytest.mark.timeout(240), pytest.mark.django_db(transaction=True)]
FILES = Path(__file__).resolve().parents[1] / "support" / "startup_files"
MESSAGES = 3000

SOCKETS = {
    "/api/v1/pv-socket": (("subscribe", "subscribeSafely", "subscribeReadOnly", "unsubscribe", "set", "refresh"),
                          ("pv", "pvs")),
    "/api/v1/device-socket": (("subscribe", "subscribeSafely", "subscribeReadOnly", "unsubscribe", "set",
                               "refresh", "stop"), ("device", "devices", "signal")),
    "/monitor": (("connect", "disconnect"), ("pv",)),
}
NAMES = ["FZ:none", "FZ:other", "TST:counter", "TST:ro", "m1_rbv", "ghost", "", " ", "a" * 300, "x\u00e9", "a\nb"]
FIELDS = ["action", "id", "value", "timeout", "pv", "pvs", "device", "devices", "signal", "pvname", "extra"]


def junk(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, biased to the awkward ones."""
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, -(2**70), 10**400 // 10**399, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-320, 3.14, 1e309 / 1e300])
    if kind == 4:
        return rng.choice(NAMES)
    if kind == 5:
        alphabet = string.printable + "\u00e9\u2603\U0001f600\x00\x7f"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
    if kind in (6, 7):
        return [junk(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    return {rng.choice(FIELDS): junk(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def message(rng: random.Random, actions: tuple[str, ...], fields: tuple[str, ...]) -> str | bytes:
    roll = rng.random()
    if roll < 0.45:  # a plausible request with random contents
        body: dict[str, Any] = {"action": rng.choice([*actions, "Subscribe", "", "delete", 7, None])}
        for _ in range(rng.randrange(0, 4)):
            body[rng.choice([*fields, *FIELDS])] = rng.choice([rng.choice(NAMES), junk(rng)])
        if "timeout" in body and isinstance(body["timeout"], int | float) and not isinstance(body["timeout"], bool):
            body["timeout"] = min(abs(body["timeout"]), 0.5)  # keep a valid set from waiting long
        return json.dumps(body)
    if roll < 0.65:
        return json.dumps(junk(rng))
    if roll < 0.85:  # broken JSON: a valid request cut short, or noise
        text = json.dumps({"action": rng.choice(actions), fields[0]: rng.choice(NAMES), "id": rng.randrange(99)})
        return text[: rng.randrange(1, len(text))] if rng.random() < 0.7 else "{" + text + "}}"
    if roll < 0.95:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if roll < 0.97:
        return json.dumps({"action": actions[0], fields[0]: "A" * 70000})  # over OAS_MAX_MESSAGE_BYTES
    return json.dumps({"action": "set", fields[0]: rng.choice(NAMES), "value": junk(rng), "timeout": 0.3})


def well_formed(path: str, reply: dict[str, Any]) -> bool:
    """A reply this socket's protocol defines: an error, a summary, or stream data."""
    if "error" in reply:
        return isinstance(reply["error"], str) and isinstance(reply.get("code"), str)
    if path == "/monitor":
        return reply.get("msg_type") in {"connection", "monitor"} and isinstance(reply.get("pvname"), str)
    if "action" in reply:
        return reply["action"] in SOCKETS[path][0]
    return ("pv" in reply or "device" in reply) and "connected" in reply


@pytest.fixture
async def devices_loaded(ioc, tmp_path):
    folder = tmp_path / "startup"
    folder.mkdir()
    shutil.copy(FILES / "00_signals.py", folder / "00_signals.py")
    original = settings.OAS
    settings.OAS = replace(original, startup_dir=str(folder), write_rate_hz=0.0)
    assert (await (await get_hub()).reload_devices(60.0))["status"] == "ok"
    yield
    settings.OAS = original


@pytest.mark.parametrize(("path", "seed"), [(p, 20261201 + i) for i, p in enumerate(SOCKETS)])
async def test_random_and_malformed_messages(path, seed, devices_loaded, ws, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(seed)
    actions, fields = SOCKETS[path]
    sock = await ws(path)
    for _ in range(MESSAGES):
        frame = message(rng, actions, fields)
        if isinstance(frame, bytes):
            await sock.comm.send_to(bytes_data=frame)
        else:
            await sock.comm.send_to(text_data=frame)
    replies = await sock.drain(3.0)
    assert len(replies) > MESSAGES / 2  # most messages are answered (errors included)
    bad = [r for r in replies if not well_formed(path, r)]
    assert bad == [], bad[:5]
    codes = {r.get("code") for r in replies if "error" in r}
    assert {"bad_json", "binary_frame", "too_large"} <= codes or path == "/monitor", codes

    # still serving: a real subscription delivers live values
    if path == "/monitor":
        await sock.send({"action": "connect", "pv": "TST:counter"})
        got = await sock.next(lambda m: m.get("msg_type") == "monitor" and m.get("pvname") == "TST:counter")
    elif path == "/api/v1/pv-socket":
        await sock.send({"action": "subscribe", "pv": "TST:counter", "id": "last"})
        got = await sock.next(lambda m: m.get("pv") == "TST:counter" and "value" in m and "sub_type" not in m)
    else:
        await sock.send({"action": "unsubscribe", "device": "m1_rbv"})  # the fuzz may hold it already
        await sock.send({"action": "subscribe", "device": "m1_rbv", "id": "last"})
        got = await sock.next(lambda m: m.get("device") == "m1_rbv" and m.get("connected") is True
                              and "value" in m and "sub_type" not in m)
    assert got["value"] is not None
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert unhandled == [], [r.getMessage() for r in unhandled[:5]]
