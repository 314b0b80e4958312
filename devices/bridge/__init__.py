"""The bridge: the only owner of Channel Access channels, publishing PV updates to groups."""
