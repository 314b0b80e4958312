"""Running the Area Detector look-alike IOC (``tests/support/ad_ioc.py``) for tests: the
subprocess, a free port that libca already searches, and the pytest fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import pytest

from devices.demo.ports import is_free
from tests.support.ioc import HOST, IocProcess


class AdIocProcess(IocProcess):
    """The AD IOC as a subprocess on 127.0.0.1:``port``; ``pv("UInt16", "cam1:SizeX")`` names its PVs."""

    def pv(self, data_type: str, suffix: str) -> str:
        return f"{self.prefix}{data_type}:{suffix}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.support.ad_ioc", "--prefix", self.prefix, "--host", HOST,
                "--port", str(self.port), "--exit-with-parent", *self.extra_args]


def searched_free_port() -> int:
    """A port of EPICS_CA_ADDR_LIST that nothing serves on now, last first.

    For test modules run before ``tests/conftest.py`` reserves a port for this IOC: libca
    searches only the ports listed when it started, and ``restartable_ioc``'s (listed last)
    is free between its tests.
    """
    for entry in reversed(os.environ.get("EPICS_CA_ADDR_LIST", "").split()):
        host, _, port = entry.rpartition(":")
        if host == HOST and port.isdigit():
            if is_free(int(port)):
                return int(port)
    raise RuntimeError("no port of EPICS_CA_ADDR_LIST is free for the AD IOC")


Scope = Literal["session", "package", "module", "class", "function"]


def ad_ioc_fixture(port: int | Callable[[], int] = searched_free_port, *, prefix: str = "AD_",
                   scope: Scope = "session", extra_args: Sequence[str] = (), name: str = "ad_ioc") -> Any:
    """A pytest fixture running the AD IOC on ``port`` (or the port a callable gives at setup).

    In a conftest: ``ad_ioc = ad_ioc_fixture(AD_IOC_PORT)``, the port also in EPICS_CA_ADDR_LIST.
    It needs the ``ca_repeater`` fixture of ``tests/conftest.py``.
    """

    @pytest.fixture(scope=scope, name=name)
    def _ad_ioc(ca_repeater: subprocess.Popen[bytes]) -> Iterator[AdIocProcess]:
        proc = AdIocProcess(prefix, port() if callable(port) else port, list(extra_args))
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()

    return _ad_ioc
