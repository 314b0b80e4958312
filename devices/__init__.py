"""The devices app: the PV and device path from Channel Access to every client.

Its own business is the device registry, the startup files that fill it and the device socket;
the subpackages name the layers of the path (see README "Where things are" and .importlinter).
"""
