"""`runbridge --shard I/N` is checked against OAS_BRIDGE_SHARDS before anything starts."""

import pytest
from django.core.management.base import CommandError

from devices.management.commands.runbridge import _shard


def test_shard_argument_checked_against_the_servers_count():
    assert _shard(None, 1) == (0, 1)
    assert _shard("1/2", 2) == (1, 2)
    with pytest.raises(CommandError, match="0 <= I < N"):
        _shard("2/2", 2)
    with pytest.raises(CommandError, match="OAS_BRIDGE_SHARDS"):
        _shard("0/2", 1)  # servers would send everything to the single bridge's channel
    with pytest.raises(CommandError, match="--shard I/3"):
        _shard(None, 3)
