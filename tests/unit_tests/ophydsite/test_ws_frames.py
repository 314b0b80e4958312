"""The one-pass frame encoder writes exactly what websockets would, and a client reads it."""

from __future__ import annotations

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.protocol import CLIENT, OPEN, Protocol
from websockets.server import ServerProtocol

from ophydsite.ws_frames import text_frames

TEXTS = [f'{{"pv":"BENCH:v{i}","value":{i}.5,"timestamp":1764831234.{i},"connected":true}}' for i in range(200)]
TEXTS += ["", "x" * 125, "x" * 126, "é" * 40_000, "y" * 70_000]  # every header length


def server(extension: PerMessageDeflate | None) -> ServerProtocol:
    conn = ServerProtocol()
    conn.state = OPEN
    conn.extensions = [extension] if extension is not None else []
    return conn


@pytest.mark.parametrize("make", [
    lambda: None,
    lambda: PerMessageDeflate(False, False, 12, 12, {"memLevel": 5, "level": 1}),
    lambda: PerMessageDeflate(False, True, 15, 15),  # a new compressor per message
], ids=["plain", "deflate", "deflate-no-takeover"])
def test_the_bytes_are_websockets_own(make):
    theirs, ours = server(make()), server(make())
    for text in TEXTS:
        theirs.send_text(text.encode())
    assert text_frames(ours, TEXTS) == b"".join(theirs.data_to_send())
    # and the stream goes on: websockets encodes the next frame with the same compressor
    theirs.send_text(b"after"), ours.send_text(b"after")
    assert theirs.data_to_send() == ours.data_to_send()


def test_a_client_decodes_them():
    client = Protocol(CLIENT, state=OPEN)  # after the handshake: frames only
    client.extensions = [PerMessageDeflate(False, False, 15, 15)]
    conn = server(PerMessageDeflate(False, False, 15, 15))
    client.receive_data(text_frames(conn, TEXTS))
    got = [e for e in client.events_received() if isinstance(e, Frame)]
    assert [f.opcode for f in got] == [Opcode.TEXT] * len(TEXTS)
    assert [f.data.decode() for f in got] == TEXTS


def test_states_it_does_not_cover_are_left_to_websockets():
    conn = server(None)
    conn.send_text(b"part", fin=False)  # a fragmented message in progress
    assert text_frames(conn, ["x"]) is None
    closing = server(None)
    closing.send_close()
    assert text_frames(closing, ["x"]) is None
