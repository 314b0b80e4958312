"""Startup files: Python that defines ophyd devices, loaded into the device registry."""
