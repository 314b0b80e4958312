"""Reading a child process's first output line without hanging on it."""

from __future__ import annotations

import os
import selectors
import subprocess
import time


def read_line(popen: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line of ``popen``, or whatever came before ``timeout`` or its exit.

    Used to wait for an IOC's ``READY`` line: a plain readline() would block forever on an IOC
    that hangs before printing.
    """
    assert popen.stdout is not None
    fd = popen.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in data and (left := deadline - time.monotonic()) > 0:
            if sel.select(left):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break  # the process exited
                data += chunk
    return data.decode(errors="replace").strip()
