"""The REST API (django-ninja, ophyd-websocket's endpoints) and its JSON errors. Views parse
and authorize; ``ops`` does the work through the same services as the sockets.
"""
