"""Live status of every process (issue 16, item 3): who is connected to what, across processes.

``registry``: the open sockets of this process; ``snapshot``: one process's state as plain
dicts; ``merge``: several processes' snapshots as one; ``node``: the channel-layer side that
asks every process and answers for this one; ``services``: what the views call.
"""
