"""Prometheus metrics (issue 16): ``instruments`` holds every metric and the one-line calls the
code makes where things happen; ``exposition`` serves ``/metrics`` (the server's view, the
bridge's own port) to the networks of OAS_METRICS_ALLOW. See docs/operations.md, "Metrics".

``instruments`` imports nothing of ours above the channel-layer vocabulary, so every layer may
call it; ``exposition`` reads the services and is imported only by the URLs and ``runbridge``.
"""
