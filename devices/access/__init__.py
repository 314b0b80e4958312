"""Who may read or write which PV or device: access rules, API tokens, logins, the write audit.
A service used by sockets, REST and the write path; depends on Django and the vocabulary only.

Other apps use the HTTP helpers exported here.
"""

from .http import request_guard, rest_write_refusal

__all__ = ["request_guard", "rest_write_refusal"]
