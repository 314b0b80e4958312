"""Shared pytest fixtures. Importable without Django settings."""

from __future__ import annotations

from collections.abc import Iterator
from subprocess import Popen

import pytest

from devices.sources.ca_context import attach as attach_ca
from ophydsite.epics_libs import pin_pyepics_libca
from tests.support.ad_ioc_process import ad_ioc_fixture
from tests.support.c_ioc import CIocProcess, typed_ioc_process
from tests.support.dual_ioc import DualIocProcess
from tests.support.ioc import IocProcess, configure_ca_client_env, free_port, start_repeater

# ---------------------------------------------------------------------------
# IOCs (Channel Access): the caproto demo IOCs and the C IOCs
#
# The CA client environment is set at import time, before anything can make a
# pyepics call: libca reads it once per process. Subprocesses (IOCs, servers)
# inherit it.
# ---------------------------------------------------------------------------

# pyepics' own libca in every test process, whatever the import order, as in production
# (ophydsite/epics_libs.py; set here too because this runs before Django's settings).
pin_pyepics_libca()

IOC_PORT = free_port()
RESTARTABLE_IOC_PORT = free_port()
while RESTARTABLE_IOC_PORT == IOC_PORT:
    RESTARTABLE_IOC_PORT = free_port()
AD_IOC_PORT = free_port()
while AD_IOC_PORT in (IOC_PORT, RESTARTABLE_IOC_PORT):
    AD_IOC_PORT = free_port()
C_IOC_PORT = free_port()
while C_IOC_PORT in (IOC_PORT, RESTARTABLE_IOC_PORT, AD_IOC_PORT):
    C_IOC_PORT = free_port()
configure_ca_client_env([IOC_PORT, RESTARTABLE_IOC_PORT, AD_IOC_PORT, C_IOC_PORT])
attach_ca()  # one libca context for the test code and the bridge, created before either uses it


@pytest.fixture(scope="session")
def ca_repeater() -> Iterator[Popen[bytes]]:
    """caproto's CA repeater on the private EPICS_CA_REPEATER_PORT, for the whole session."""
    proc = start_repeater()
    yield proc
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def ioc(ca_repeater: Popen[bytes]) -> Iterator[IocProcess]:
    """The demo IOC with prefix ``TST:``, shared by the whole session."""
    proc = IocProcess("TST:", IOC_PORT)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def restartable_ioc(ca_repeater: Popen[bytes]) -> Iterator[IocProcess]:
    """A fresh demo IOC with prefix ``RST:`` per test, for tests that kill or restart it."""
    proc = IocProcess("RST:", RESTARTABLE_IOC_PORT)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def c_ioc(ca_repeater: Popen[bytes]) -> Iterator[CIocProcess]:
    """The benchmarks' C IOC (bench/cioc.py), prefix ``CIO:``: 10 Hz counters for the
    timing-sensitive tests, shared by the whole session."""
    proc = CIocProcess("CIO:", C_IOC_PORT)
    proc.start(timeout=30)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def typed_ioc() -> Iterator[int]:
    """The C IOC with one record per CA type (tests/support/typed_ioc.py), fresh for each
    module (a test may write to it); yields its port, which is not in EPICS_CA_ADDR_LIST:
    clients name it themselves."""
    with typed_ioc_process() as port:
        yield port


@pytest.fixture(scope="module")
def dual_ioc(ca_repeater: Popen[bytes]) -> Iterator[DualIocProcess]:
    """The C IOC serving its records over Channel Access and PV Access at once
    (tests/support/dual_ioc.py), fresh for each module (a test may write to it or kill and
    restart it); its ports are in none of the test process's EPICS_* lists: servers get
    ``client_env()``."""
    proc = DualIocProcess()
    proc.start()
    yield proc
    proc.stop()

# --- end of the IOC section ----------------------------------------------------


@pytest.fixture(scope="session")
def queue_server(tmp_path_factory: pytest.TempPathFactory):
    """A real Bluesky Queue Server (RE Manager + bluesky-httpserver) for the session."""
    from tests.support.qserver import QueueServer

    server = QueueServer(tmp_path_factory.mktemp("qserver"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


# The Area Detector-like IOC (tests/support/ad_ioc.py, run by ad_ioc_process.py): one detector
# per data type, AD_<type>:.
ad_ioc = ad_ioc_fixture(AD_IOC_PORT)


OUTPUT_TAIL = 4000  # characters of a process's output shown with a failed test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``run_last`` go to the end, in their order: a wait of theirs (nginx's idle
    socket, 2 minutes) then overlaps the rest of the suite instead of adding to it."""
    last = [item for item in items if item.get_closest_marker("run_last")]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker("run_last")] + last


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each test's outcome on it, so fixtures (browser screenshots) know it failed; on a
    failure, add the end of the stderr of every IOC or server process the test used."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    if report.failed:
        for name, held in getattr(item, "funcargs", {}).items():
            for value in held if isinstance(held, tuple) else (held,):  # e.g. (server, database)
                if not type(value).__module__.startswith("tests.support"):
                    continue
                text = getattr(value, "stderr_text", None) or getattr(value, "output", None)
                if callable(text):
                    report.sections.append((f"output of fixture {name}", text()[-OUTPUT_TAIL:]))
    return report

