"""PV names with a protocol: ``ca://NAME``, ``pva://NAME`` or a bare ``NAME``.

A bare name means ``OAS_DEFAULT_PROTOCOL`` (Channel Access unless set). Every layer below the
sockets knows a PV by its *topic*, one string per upstream channel: a Channel Access PV is its
bare name (as before PV Access existed, so CA topics, device signals and the camera are
unchanged) and a PV Access PV is ``pva://NAME``. Clients may spell the same PV several ways
(``X``, ``ca://X``); each spelling maps to the one topic, so the channel is shared.
"""

from __future__ import annotations

from typing import NamedTuple

SCHEMES = ("ca", "pva")
SEPARATOR = "://"


class PvName(NamedTuple):
    scheme: str  # "ca" | "pva"
    name: str  # the name the control system knows, without a scheme


class PvNameError(ValueError):
    """A name whose scheme is unknown or that has nothing after its scheme."""


def parse_pv_name(text: str, default: str = "ca") -> PvName:
    """The protocol and bare name of ``text``; PvNameError says what is wrong."""
    scheme, sep, bare = text.partition(SEPARATOR)
    if not sep:
        return PvName(default, text)
    if scheme not in SCHEMES:
        raise PvNameError(f"unknown protocol {scheme!r} in {text[:80]!r}: use ca:// or pva:// "
                          "(or a bare name for OAS_DEFAULT_PROTOCOL)")
    if not bare:
        raise PvNameError(f"no PV name after {scheme}{SEPARATOR}")
    if SEPARATOR in bare:
        raise PvNameError(f"{text[:80]!r} names more than one protocol")
    return PvName(scheme, bare)


def topic_of(text: str, default: str = "ca") -> str:
    """The topic of a client's spelling of a PV (PvNameError if malformed)."""
    scheme, bare = parse_pv_name(text, default)
    return bare if scheme == "ca" else f"{scheme}{SEPARATOR}{bare}"


def source_of(topic: str) -> PvName:
    """Which protocol serves a topic, and the name to ask it for."""
    return parse_pv_name(topic, "ca")


def qualified(topic: str) -> str:
    """The topic with its scheme always spelled out (``ca://X``), as access rules may name it."""
    return topic if SEPARATOR in topic else f"ca{SEPARATOR}{topic}"
