"""The Queue Server's share of a reload (OAS_QSERVER_DEVICES): ask it which devices a user
group may use, then run its startup code (IPython-profile rules, no RunEngine started) for
those devices. Blocking: the bridge calls this off its loop, inside a reload."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ophydsite.settings.oas import OasSettings
from qsconsole.devices_allowed import QsDevices, qserver_devices_allowed
from qsconsole.qs_http import qs_http_client

from .loader import load_sources
from .registry import QserverPart
from .sources import sources_from_path


@dataclass(frozen=True)
class QserverAsk:
    part: QserverPart
    answer: QsDevices


def qserver_share(oas: OasSettings) -> QserverAsk:
    """Ask first: when the Queue Server cannot be asked its startup code is not run at all
    and the registry keeps the last good devices from it."""
    client = qs_http_client(oas, timeout_s=oas.qserver_timeout_s)
    answer = qserver_devices_allowed(client, oas.qserver_user_group)
    if not answer.ok:
        return QserverAsk(QserverPart(None, None), answer)
    try:
        sources = sources_from_path(oas.qserver_startup_dir, kind="qserver")
    except FileNotFoundError as exc:
        return QserverAsk(QserverPart(None, None),
                          replace(answer, allowed=None, error=f"OAS_QSERVER_STARTUP_DIR: {exc}"))
    result = load_sources(sources, timeout_s=oas.startup_timeout_s, connect_timeout_s=oas.async_connect_timeout_s)
    return QserverAsk(QserverPart(answer.allowed, result), answer)
