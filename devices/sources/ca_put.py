"""A Channel Access put with completion that reports the IOC's status.

pyepics' own put-callback drops the completion status, so a write the IOC refuses looks
like success. This issues ``ca_array_put_callback`` itself and passes the status on.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from epics import ca, dbr

ECA_NORMAL = 1
PutDone = Callable[[bool, str], None]

_pending: dict[int, tuple[PutDone, ctypes.py_object]] = {}
_pending_lock = threading.Lock()
_next_token = 0


def _on_put_event(args: Any, **_: Any) -> None:
    """Runs on the CA callback thread. Must not block: only calls the waiter's hand-off."""
    token = int(args.usr) if args.usr is not None else -1
    with _pending_lock:
        entry = _pending.pop(token, None)
    if entry is None:
        return
    ok = args.status == ECA_NORMAL
    entry[0](ok, "" if ok else ca.message(args.status))


_CB_PUT_STATUS = dbr.make_callback(_on_put_event, dbr.event_handler_args)


def put_with_status(chid: Any, value: Any, done: PutDone) -> None:
    """Start a put with completion; ``done(ok, message)`` runs on the CA thread when it ends.

    Raises ValueError when the value cannot be packed for the channel's native type.
    """
    global _next_token
    ca.use_initial_context()  # executor threads are not attached to libca's context
    ftype = ca.field_type(chid)
    count, data = _pack(ftype, ca.element_count(chid), value)
    with _pending_lock:
        _next_token += 1
        token = _next_token
        usr = ctypes.py_object(token)
        _pending[token] = (done, usr)
    ret = ca.libca.ca_array_put_callback(ftype, count, chid, data, _CB_PUT_STATUS, usr)
    if ret != ECA_NORMAL:
        with _pending_lock:
            _pending.pop(token, None)
        raise ValueError(f"Channel Access refused the put: {ca.message(ret)}")
    ca.flush_io()  # send now; otherwise the request waits for another thread's flush


def _pack(ftype: int, native_count: int, value: Any) -> tuple[int, Any]:
    """Pack ``value`` into a ctypes array of the channel's native type."""
    ctype = dbr.Map[ftype]
    if ftype == dbr.CHAR and isinstance(value, str):
        value = list(value.encode("utf-8")) + [0]
    if ftype == dbr.STRING:
        items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") else list(value)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    count = max(1, min(len(items), native_count))
    data = (count * ctype)()
    for i, item in enumerate(items[:count]):
        if ftype == dbr.STRING:
            text = item if isinstance(item, bytes) else str(item).encode("utf-8")
            if len(text) > 39:
                raise ValueError("EPICS strings hold at most 39 bytes")
            data[i].value = text
        else:
            try:
                data[i] = item
            except TypeError as exc:
                raise ValueError(f"{item!r} does not fit the PV's type {dbr.Name(ftype)}") from exc
    return count, data
