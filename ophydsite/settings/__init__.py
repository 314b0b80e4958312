"""Settings package: base Django settings plus infrastructure picked from the environment."""

import os

from .base import *  # noqa: F401,F403
from .base import BASE_DIR
from .infra import channel_layers, databases

REDIS_URL = os.environ.get("REDIS_URL") or None
DATABASES = databases(BASE_DIR)
CHANNEL_LAYERS = channel_layers(REDIS_URL, os.environ.get("OAS_REDIS_PREFIX", "ophydsite"))
