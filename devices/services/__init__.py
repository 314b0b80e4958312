"""Services shared by sockets and REST: one-shot reads, the audited write path, and the
runtime that finds this process's hub and starts the embedded bridge. Use access, the core
and (runtime only) the bridge.
"""
