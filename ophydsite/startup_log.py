"""The start-up line naming every effective setting, with secrets masked.

An operator asking "which gateway did it search, who may write?" reads the answer in the log
of the start, not in an environment file that may have changed since.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ophydsite.settings.oas import OTHER_NAMES, OasSettings

MASK = "***"
# Setting names (lower case) whose values are secrets wherever they appear.
SECRET_WORDS = ("key", "password", "passwd", "secret", "token")

# Channel Access and PV Access variables, read by libca, pyepics and p4p at start.
EPICS_VARIABLES = (
    "EPICS_CA_ADDR_LIST", "EPICS_CA_AUTO_ADDR_LIST", "EPICS_CA_NAME_SERVERS", "EPICS_CA_MAX_ARRAY_BYTES",
    "EPICS_CA_SERVER_PORT", "EPICS_CA_REPEATER_PORT", "EPICS_CA_CONN_TMO",
    "EPICS_PVA_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST", "EPICS_PVA_NAME_SERVERS", "EPICS_PVA_SERVER_PORT",
    "EPICS_PVA_BROADCAST_PORT",
)

log = logging.getLogger("ophydsite.startup")


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_url(url: str | None) -> str | None:
    """``scheme://user:***@host/db`` for a URL with a password (in the authority or the query);
    any other URL exactly as it was."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        masked_url = url
        if "@" in parts.netloc:
            userinfo, host = parts.netloc.rsplit("@", 1)
            user, has_password, _ = userinfo.partition(":")
            if has_password:
                masked_url = masked_url.replace(parts.netloc, f"{user}:{MASK}@{host}", 1)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(is_secret(key) for key, _ in pairs):
            query = urlencode([(key, MASK if is_secret(key) else value) for key, value in pairs], safe="*")
            masked_url = masked_url.replace("?" + parts.query, "?" + query, 1)
        return masked_url
    except ValueError:
        return MASK  # not a URL we can take apart: show nothing of it


def masked(name: str, value: Any) -> Any:
    """A secret's value as MASK (empty stays empty: "no key set" is worth seeing)."""
    if is_secret(name) and value not in (None, ""):
        return MASK
    return value


def effective_settings(role: str, oas: OasSettings, env: Mapping[str, str],
                       extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every OAS_* setting in force (named by its variable), the EPICS address lists, the
    database, Redis and Django's host and key settings, secrets masked."""
    values: dict[str, Any] = {"role": role}
    for name, value in asdict(oas).items():
        variable = OTHER_NAMES.get(name, "OAS_" + name.upper())
        values[variable] = masked(variable, list(value) if isinstance(value, tuple) else value)
    for variable in EPICS_VARIABLES:
        values[variable] = env.get(variable)
    values["DATABASE_URL"] = mask_url(env.get("DATABASE_URL")) or "sqlite (db.sqlite3 beside manage.py)"
    values["REDIS_URL"] = mask_url(env.get("REDIS_URL"))
    values["OAS_REDIS_PREFIX"] = env.get("OAS_REDIS_PREFIX", "ophydsite")
    values["DJANGO_ALLOWED_HOSTS"] = env.get("DJANGO_ALLOWED_HOSTS", "*")
    values["DJANGO_DEBUG"] = env.get("DJANGO_DEBUG", "0")
    values["DJANGO_SECRET_KEY"] = MASK if env.get("DJANGO_SECRET_KEY") else "(not set: the insecure development key)"
    for name, value in (extra or {}).items():
        values[name] = masked(name, value)
    return values


def log_effective_settings(role: str, oas: OasSettings, extra: Mapping[str, Any] | None = None) -> None:
    """One INFO record: a ``settings`` field in JSON logs, ``NAME=value`` pairs in plain text."""
    values = effective_settings(role, oas, os.environ, extra)
    if oas.log_format == "json":
        log.info("effective settings (%s)", role, extra={"settings": values})
    else:
        log.info("effective settings (%s): %s", role, " ".join(f"{name}={value!r}" for name, value in values.items()))
