"""Server-to-client text frames encoded in one pass, the bytes websockets would write.

Every PV update is one WebSocket frame; websockets builds a ``Frame`` object, checks it,
runs it through each extension and serialises it, about as much CPU as the rest of an
update's trip through the server (cProfile of bench/pipeline.py). For the one shape the
streaming sockets send, whole text frames from the server, with no extension or with
permessage-deflate, this writes the same bytes directly, using the connection's own
compressor so later frames websockets encodes continue the same deflate stream.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.protocol import OPEN, SERVER

_TAIL = b"\x00\x00\xff\xff"  # what a sync flush ends with; dropped, as RFC 7692 says
_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")


def text_frames(conn: Any, texts: list[str]) -> bytes | None:
    """The frames of ``texts`` for ``conn`` (a websockets server protocol), or None when
    the connection is in a state or has an extension this does not cover: then websockets
    itself must encode them."""
    if conn.side is not SERVER or conn.state is not OPEN or conn.expect_continuation_frame:
        return None
    extensions = conn.extensions
    deflate: PerMessageDeflate | None = None
    if extensions:
        if len(extensions) != 1 or type(extensions[0]) is not PerMessageDeflate:
            return None
        deflate = extensions[0]
    out: list[bytes] = []
    first = 0xC1 if deflate is not None else 0x81  # FIN + text, and RSV1 when compressed
    for text in texts:
        data = text.encode()
        if deflate is not None:
            if deflate.local_no_context_takeover:
                encoder = zlib.compressobj(wbits=-deflate.local_max_window_bits, **deflate.compress_settings)
            else:
                encoder = deflate.encoder
            data = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
            data = data[:-4] if data.endswith(_TAIL) else data
        size = len(data)
        if size < 126:
            out.append(bytes((first, size)))
        elif size < 65536:
            out.append(_H16.pack(first, 126, size))
        else:
            out.append(_H64.pack(first, 127, size))
        out.append(data)
    return b"".join(out)
