"""The operator login page, throttled against password guessing.

After ``MAX_FAILURES`` failed logins for one user name from one address within
``WINDOW_S``, that pair is refused (HTTP 429) until the window passes; the password is not
even checked meanwhile. Counts live in Django's cache (per process with the default cache).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

MAX_FAILURES = 5
WINDOW_S = 300


def _key(request: HttpRequest) -> str:
    name = str(request.POST.get("username", "")).strip().lower()[:150]
    return f"login-failures:{request.META.get('REMOTE_ADDR', '?')}:{name}"


class ThrottledLoginView(LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if cache.get(_key(request), 0) >= MAX_FAILURES:
            form = self.get_form()
            context = self.get_context_data(form=form, throttled=(
                f"Too many failed logins for this user from your address; try again in {WINDOW_S // 60} minutes"))
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        key = _key(self.request)
        cache.add(key, 0, WINDOW_S)
        cache.incr(key)
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        cache.delete(_key(self.request))
        return super().form_valid(form)
