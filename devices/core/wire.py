"""Client-facing message texts built from bridge messages.

A bridge message is rendered once per process and per variant (the write access a client
is told), never once per client. Shapes follow ophyd-websocket 0.1.1 and pycaserver.
"""

from __future__ import annotations

from typing import Any

from devices.channel_layer.jsonsafe import dumps, scalar_json


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


_quoted: dict[str, str] = {}


def _name(name: str) -> str:
    """A PV name as JSON, quoted once per name: it is in every update of that PV."""
    text = _quoted.get(name)
    if text is None:
        if len(_quoted) > 100_000:  # names come and go over months: never grow without bound
            _quoted.clear()
        text = _quoted[name] = dumps(name)
    return text


def pv_value_text(msg: dict[str, Any], writable: bool, name: str | None = None) -> str:
    """pv-socket value message; ``writable`` is the write access this client has, ``name``
    the client's spelling of the PV when it differs from the topic. Built for every update
    (once per variant): the cheapest string building measured here."""
    return (
        f'{{"pv":{_name(name or msg["pv"])},"value":{msg["value"]},"timestamp":{scalar_json(msg["timestamp"])},'
        f'"connected":{_bool(msg["connected"])},"read_access":{_bool(msg["read_access"])},'
        f'"write_access":{_bool(msg["write_access"] and writable)},"severity":{scalar_json(msg.get("severity"))}}}'
    )


def pv_meta_text(msg: dict[str, Any], writable: bool, name: str | None = None) -> str:
    """pv-socket metadata message (``sub_type: "meta"``); ``name`` as in pv_value_text."""
    meta = dict(msg["meta"])
    meta["write_access"] = bool(meta.get("write_access")) and writable
    meta["sub_type"] = "meta"
    meta["obj"] = meta["pv"] = name or msg["pv"]
    return dumps(meta)


def monitor_text(msg: dict[str, Any], units: str | None, name: str | None = None) -> str:
    """pycaserver ``monitor`` message; ``name``: the client's spelling of the PV."""
    return (
        '{"msg_type":"monitor","pvname":' + dumps(name or msg["pv"])
        + ',"value":' + msg["value"]
        + ',"count":' + dumps(msg.get("count", 1))
        + ',"timestamp":' + dumps(msg["timestamp"])
        + ',"units":' + dumps(units or "")
        + ',"severity":' + dumps(msg.get("severity"))
        + "}"
    )


def connection_text(pv: str, connected: bool) -> str:
    """pycaserver ``connection`` message."""
    return '{"msg_type":"connection","pvname":' + dumps(pv) + ',"conn":' + _bool(connected) + "}"


def device_value_text(msg: dict[str, Any], device: str, signal: str, writable: bool, connected: bool) -> str:
    """device-socket value message; ``connected`` is the device's (all its signals), as in 0.1.1."""
    return (
        '{"device":' + dumps(device)
        + ',"value":' + msg["value"]
        + ',"timestamp":' + dumps(msg["timestamp"])
        + ',"connected":' + _bool(connected)
        + ',"read_access":' + _bool(msg["read_access"])
        + ',"write_access":' + _bool(msg["write_access"] and writable)
        + ',"signal":' + dumps(signal)
        + ',"signal_connected":' + _bool(msg["connected"])
        + ',"severity":' + dumps(msg.get("severity"))
        + "}"
    )


def device_meta_text(msg: dict[str, Any], device: str, signal: str, writable: bool, connected: bool) -> str:
    """device-socket metadata message: the PV metadata fields plus ``device`` and ``signal``."""
    meta = dict(msg["meta"])
    meta["signal_connected"] = bool(meta.get("connected"))
    meta["connected"] = connected
    meta["write_access"] = bool(meta.get("write_access")) and writable
    meta["sub_type"] = "meta"
    meta["obj"] = device
    meta["device"] = device
    meta["signal"] = signal
    return dumps(meta)
