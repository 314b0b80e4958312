"""The Queue Server console: its ZMQ output relayed to WebSocket clients."""
