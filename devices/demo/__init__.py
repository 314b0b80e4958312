"""The demo IOC (caproto), its motor record and the process helpers that start it beside the
server (free CA port, CA repeater, reading a child's first line). Tooling, outside the layers.
"""
