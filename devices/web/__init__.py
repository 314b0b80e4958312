"""HTML pages: the start page, the operator console pages, the health probe and the admin's
reload page. Thin views over the services; they may use anything below the sockets layer.
"""
