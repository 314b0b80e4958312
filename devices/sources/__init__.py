"""What the bridge reads from: the ``Source`` interface and its Channel Access, ophyd-signal and
positioner implementations, the shared CA context and device plans. No channel layer, no hub.

The camera's Area Detector feeds (CA and PVA) use the names exported here.
"""

from .ca_context import ca_executor
from .ca_source import CaSource
from .inbox import inbox_for
from .pva_source import pva_context
from .source import PropertyEvent, ValueEvent

__all__ = ["CaSource", "PropertyEvent", "ValueEvent", "ca_executor", "inbox_for", "pva_context"]
