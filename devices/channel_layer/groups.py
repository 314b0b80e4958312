"""Channel-layer group names for PVs.

Layers accept only ``[A-Za-z0-9-_.]`` and fewer than 100 characters, while EPICS names
contain ``:`` and may be long. Names are escaped reversibly when short enough and hashed
otherwise; the two forms have different prefixes so they can never collide.
"""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"[A-Za-z0-9.\-]")
_MAX_ESCAPED = 90


def pv_group(name: str) -> str:
    """The group a PV's updates are published to."""
    return _encode("pv", name)


def _encode(kind: str, name: str) -> str:
    escaped = "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"_{b:02X}" for b in ch.encode("utf-8"))
        for ch in name
    )
    candidate = f"{kind}.n.{escaped}"
    if len(candidate) <= _MAX_ESCAPED:
        return candidate
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=20).hexdigest()
    return f"{kind}.h.{digest}"
