"""Who may read or write which PV or device: access rules, API tokens, the write audit."""
