"""The socket protocols (pv-socket, device socket, pycaserver's /monitor) and their thin
consumers. Sessions hold the protocol logic without a socket; they use the services, the core
and access, never the bridge or CA directly.

Other socket apps (camera, qsconsole) build on ``Session`` and ``SessionConsumer``.
"""

from .consumers import SessionConsumer
from .session import CLOSE_UNAUTHORIZED, Session

__all__ = ["CLOSE_UNAUTHORIZED", "Session", "SessionConsumer"]
