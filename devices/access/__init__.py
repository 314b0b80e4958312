"""Who may read or write which PV or device: access rules, API tokens, logins, the write audit.
A service used by sockets, REST and the write path; depends on Django and the vocabulary only.

Other apps use the HTTP helpers, the guard and the rule vocabulary exported here.
"""

from .guard import AuditUnavailable, Guard
from .http import request_guard, rest_write_refusal
from .rules import QSERVER, Decision, Level

__all__ = ["QSERVER", "AuditUnavailable", "Decision", "Guard", "Level", "request_guard", "rest_write_refusal"]
