"""The streaming core every socket shares: the process hub, per-client mailboxes, client wire
texts and request parsing. Uses only the channel-layer vocabulary below it; no ORM, no CA.

Other apps (camera, qsconsole) use the core through the names exported here.
"""

from devices.channel_layer.jsonsafe import dumps
from devices.channel_layer.topics import name_problem

from .hub import Hub, Update
from .mailbox import Mailbox
from .requests import Limits, ProtocolError, decode_frame, request_id_of

__all__ = ["Hub", "Limits", "Mailbox", "ProtocolError", "Update", "decode_frame", "dumps", "name_problem",
           "request_id_of"]
