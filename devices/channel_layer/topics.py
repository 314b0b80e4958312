"""Bridge topics for device signals.

The bridge, the hubs and the channel layer know streams by one string each. A PV is its own
name; a signal of a registered device is ``"device <device> <signal>"``. The spaces make the
two namespaces disjoint: no PV request can name a device topic, because client names with
whitespace are refused (name_problem below), so the pv-socket never reaches device objects.
"""

from __future__ import annotations

_PREFIX = "device "


def device_topic(device: str, signal: str) -> str:
    """The topic of ``signal`` (its ophyd name) within registered ``device``."""
    return f"{_PREFIX}{device} {signal}"


def parse_device_topic(topic: str) -> tuple[str, str] | None:
    """``(device, signal)`` of a device topic, or None for a PV name."""
    if not topic.startswith(_PREFIX):
        return None
    parts = topic[len(_PREFIX):].split(" ")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def topic_label(topic: str) -> str:
    """How a topic is named in messages to people: the PV, or ``device.signal``."""
    parsed = parse_device_topic(topic)
    if parsed is None:
        return topic
    device, signal = parsed
    return device if device == signal else f"{device} ({signal})"


def name_problem(name: str, max_length: int, noun: str = "PV") -> str | None:
    """Why ``name`` cannot be a PV (or device) name, or None if it can."""
    if not name:
        return f"{noun} name is empty"
    if len(name) > max_length:
        return f"{noun} name is {len(name)} characters long; at most {max_length} (OAS_MAX_NAME_LENGTH)"
    if not name.isascii() or not name.isprintable() or any(ch.isspace() for ch in name):
        return f"{noun} name {name[:60]!r} contains spaces, control or non-ASCII characters"
    return None
