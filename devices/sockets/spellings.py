"""A client's own spelling of each PV it names, where that differs from the PV's topic.

Clients may name one PV several ways (``X``, ``ca://X``; with OAS_DEFAULT_PROTOCOL=pva, ``X``
and ``pva://X``). The hub and bridge know it by one topic (channel_layer/pvnames.py), so the
channel is shared; what the client reads back uses the spelling it first chose, so a client
that matches messages by the name it sent keeps working. Most clients use topics as they are
and cost nothing here.
"""

from __future__ import annotations

from collections.abc import Container

from devices.channel_layer.pvnames import PvNameError, topic_of
from devices.core.requests import PvRequest


class Spellings:
    def __init__(self, default_protocol: str) -> None:
        self._default = default_protocol
        self._shown: dict[str, str] = {}  # topic -> the client's spelling, where they differ

    def resolve(self, request: PvRequest, known: Container[str]) -> None:
        """Turn ``request.names`` into topics in place (malformed names join
        ``request.invalid`` with the reason). A topic not in ``known`` (the client's current
        subscriptions) takes the spelling used here; a known one keeps its earlier spelling."""
        topics: list[str] = []
        for spelling in request.names:
            try:
                topic = topic_of(spelling, self._default)
            except PvNameError as exc:
                request.invalid.append((spelling, str(exc)))
                continue
            if topic in topics:  # a second spelling of one PV in this request: the first stands
                continue
            topics.append(topic)
            self.topic(spelling, known)
        request.names = topics

    def topic(self, spelling: str, known: Container[str]) -> str:
        """The topic of one name (PvNameError if malformed); remembered as for ``resolve``."""
        topic = topic_of(spelling, self._default)
        if topic not in known:
            if topic == spelling:
                self._shown.pop(topic, None)
            else:
                self._shown[topic] = spelling
        return topic

    def shown(self, topic: str) -> str:
        """The name the client knows ``topic`` by."""
        return self._shown.get(topic, topic)

    def spelled(self, topic: str) -> str | None:
        """The client's spelling of ``topic`` when it differs from the topic, else None."""
        return self._shown.get(topic)

    def forget(self, topic: str) -> None:
        self._shown.pop(topic, None)
