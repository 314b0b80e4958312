"""A caproto server circuit that outlives a request for a channel it just dropped.

caproto 1.3's server forgets a channel (its sid) as soon as it sends the
client a server-side disconnect. A request the client sent for that channel
before it read the disconnect (a read, a write, a subscription or its
cancel, a clear) then makes ``_command_queue_iteration`` raise KeyError out
of its own protocol-error handler, which ends the circuit's command task
while the TCP connection stays open: the client's every later request on
that circuit, for any PV, goes unanswered until it times out. The demo IOC's
``flaky:online`` takes PVs off the air exactly this way, and a full test run
lost the test process's circuit to it about every second time.

``SturdyCircuit`` drops such requests (the client learns from the disconnect
it is about to read, as from an EPICS base IOC), and closes any circuit whose
command task still ends while connected, so the client reconnects instead of
waiting forever.
"""

from __future__ import annotations

import logging
from typing import Any

import caproto
from caproto.asyncio.server import VirtualCircuit

log = logging.getLogger(__name__)

# Client requests that name a channel by its server id.
_SID_REQUESTS = (caproto.ReadNotifyRequest, caproto.ReadRequest, caproto.WriteNotifyRequest,
                 caproto.WriteRequest, caproto.EventAddRequest, caproto.EventCancelRequest,
                 caproto.ClearChannelRequest)


class SturdyCircuit(VirtualCircuit):
    """caproto's asyncio server circuit, hardened against the dropped-channel race."""

    async def _command_queue_iteration(self, command: Any) -> Any:
        if isinstance(command, _SID_REQUESTS) and command.sid not in self.circuit.channels_sid:
            log.info("dropped %s for sid %d: the channel was disconnected by the server",
                     type(command).__name__, command.sid)
            return None
        return await super()._command_queue_iteration(command)

    async def command_queue_loop(self) -> Any:
        try:
            return await super().command_queue_loop()
        finally:
            if self.connected:
                # caproto ends the loop on a protocol error it cannot recover from
                # (LoopExit) or on an exception of its own, and leaves the socket open.
                log.error("command task of the circuit to %s:%d ended; closing the circuit "
                          "so the client reconnects", *self.circuit.address)
                self.client.close()
