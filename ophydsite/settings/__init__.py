"""Settings package: base Django settings plus infrastructure picked from the environment."""

import os

from ophydsite.epics_libs import pin_pyepics_libca

from .base import *  # noqa: F401,F403
from .base import BASE_DIR
from .infra import channel_layers, databases

pin_pyepics_libca()  # before any app imports ophyd (ophydsite/epics_libs.py)

REDIS_URL = os.environ.get("REDIS_URL") or None
DATABASES = databases(BASE_DIR)
CHANNEL_LAYERS = channel_layers(REDIS_URL, os.environ.get("OAS_REDIS_PREFIX", "ophydsite"))
