"""An in-process simulated source for unit tests of the bridge core.

It implements the bridge's Source interface (devices/bridge/source.py) the way a second
control system would; events are fed from the test instead of from an IOC. System tests
use the real caproto IOC.
"""

from __future__ import annotations

import asyncio
from typing import Any

from devices.sources.source import ChannelInfo, PutCallback, SourceSink, ValueEvent


class SimSource:
    registry: dict[str, SimSource] = {}

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, sink: SourceSink) -> None:
        self.name = name
        self.loop = loop
        self.sink = sink
        self.info_value = ChannelInfo(kind="float", count=1, units="mm", precision=3,
                                      lower_ctrl_limit=-10.0, upper_ctrl_limit=10.0)
        self.opened = False
        self.closed = False
        self.puts: list[Any] = []
        self.put_result: tuple[bool, str] | None = (True, "")
        SimSource.registry[name] = self

    def open(self) -> None:
        self.opened = True

    def info(self, timeout: float) -> ChannelInfo | None:
        return self.info_value

    def put(self, value: Any, done: PutCallback) -> None:
        self.puts.append(value)
        if self.put_result is not None:
            self.loop.call_soon_threadsafe(done, *self.put_result)

    def close(self) -> None:
        self.closed = True

    # test side
    def connect(self, access: tuple[bool, bool] = (True, True)) -> None:
        self.sink.source_access(access)
        self.sink.source_connection(True)

    def disconnect(self) -> None:
        self.sink.source_connection(False)

    def emit(self, value: Any, timestamp: float = 1.0, severity: int = 0, status: int = 0) -> None:
        self.sink.source_value(ValueEvent(value, timestamp, severity, status))


async def opened_source(name: str, timeout: float = 1.0) -> SimSource:
    """The SimSource the bridge opened for ``name`` (waits up to ``timeout`` seconds for it)."""
    for _ in range(max(1, round(timeout / 0.01))):
        source = SimSource.registry.get(name)
        if source is not None and source.opened:
            return source
        await asyncio.sleep(0.01)
    raise AssertionError(f"no source for {name}; have {sorted(SimSource.registry)}")
