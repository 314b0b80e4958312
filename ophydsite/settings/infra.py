"""Database and channel layers, chosen from DATABASE_URL and REDIS_URL.

With neither set the server is self-contained: SQLite and the in-memory layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url

# Every set commits twice (its pending audit row, then the outcome). In SQLite's default
# rollback-journal mode a commit costs several fsyncs (0.8-4 ms here); in WAL mode one, of the
# log. synchronous=FULL keeps each commit durable across a power cut, so a pending row is on
# disk before its put. WAL also lets readers (admin, console) run beside the writer.
SQLITE_INIT = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL"


def databases(base_dir: Path) -> dict[str, Any]:
    """SQLite next to the project unless DATABASE_URL names another database."""
    default = f"sqlite:///{base_dir / 'db.sqlite3'}"
    url = os.environ.get("DATABASE_URL", default)
    database = dj_database_url.parse(url, conn_max_age=60)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("OPTIONS", {})["init_command"] = SQLITE_INIT
    return {"default": database}


def channel_layers(redis_url: str | None, prefix: str = "ophydsite") -> dict[str, Any]:
    """Two aliases: "default" fans PV updates out, "bridge" carries commands to the bridge.

    With Redis, fan-out uses the pub/sub layer (one PUBLISH per update) while commands use
    the list-based layer, whose channels have a single reader, so only one bridge runs a set.
    ``prefix`` (OAS_REDIS_PREFIX) keeps several deployments on one Redis apart.
    """
    if not redis_url:
        memory = {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # Hubs join their groups once and stay for the life of the process: the layer's
            # default group_expiry (24 h) would drop a control-room screen's process from
            # the registry, access and console groups after a day.
            "CONFIG": {"capacity": 10000, "expiry": 60, "group_expiry": 10 * 365 * 24 * 3600},
        }
        return {"default": memory, "bridge": memory}
    # redis-py 8 times sockets out after 5 s, the same as channels-redis's blocking pop:
    # the two race and the reader dies. Give blocking reads room; cap the pool (redis-py 8
    # raises at 100 connections otherwise).
    host = {"address": redis_url, "socket_timeout": 30, "max_connections": 50}
    return {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [host], "prefix": prefix},
        },
        "bridge": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [host],
                "prefix": prefix,
                "capacity": 5000,
                "expiry": 30,
                # Keep groups of screens that stay open for days.
                "group_expiry": 7 * 24 * 3600,
            },
        },
    }
