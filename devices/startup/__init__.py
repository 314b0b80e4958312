"""Startup files: Python that defines ophyd devices, loaded by the bridge (off its loop) into the
device registry. Uses the sources' CA context and device plans; never the hub or sockets.
"""
