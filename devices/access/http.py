"""Who a REST request is, who may use an endpoint that changes something, and CSRF."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware

from .db import DB_AUDIT, DB_RULES
from .guard import Guard
from .selectors import principal_for
from .settings import current_policy


def _no_view(request: HttpRequest) -> HttpResponse:  # CsrfViewMiddleware needs a get_response
    return HttpResponse()


async def rest_write_refusal(request: HttpRequest, *, permission: str, what: str) -> JsonResponse | None:
    """None when the request may go on, else the JSON refusal.

    Scripts authenticate with an API token (no CSRF: not a browser cookie); browser sessions
    must carry Django's CSRF token; anonymous requests pass only in the drop-in compatibility
    mode (OAS_ANONYMOUS_WRITES), as ophyd-websocket scripts send no credentials.
    """
    token = getattr(request, "api_token", None)
    user = request.user if token is not None else await request.auser()  # ApiTokenMiddleware set it
    if not user.is_authenticated:
        if settings.OAS.anonymous_writes:
            return None
        return JsonResponse({"error": f"{what} needs a login or an API token (Authorization: Bearer <token>)"},
                            status=401)
    if token is None:
        refused = CsrfViewMiddleware(_no_view).process_view(request, None, (), {})
        if refused is not None:
            return JsonResponse({"error": f"{what} from a browser session needs Django's CSRF token "
                                          "(X-CSRFToken header)"}, status=403)
    if not await sync_to_async(user.has_perm)(permission):
        return JsonResponse({"error": f"{what} needs the permission {permission}"}, status=403)
    return None


def csrf_refusal(request: HttpRequest) -> str | None:
    """Why a browser-session write lacks Django's CSRF token, or None (tokens and anonymous
    requests carry no cookie a forger could ride on)."""
    if getattr(request, "api_token", None) is not None or not request.user.is_authenticated:
        return None
    if CsrfViewMiddleware(_no_view).process_view(request, None, (), {}) is None:
        return None
    return "A write from a browser session needs Django's CSRF token (X-CSRFToken header)"


async def request_guard(request: HttpRequest, path: str = "rest") -> Guard:
    """The guard of one REST request: its user or token, address and origin."""
    token = getattr(request, "api_token", None)
    user = request.user if token is not None else await request.auser()
    request.user = user
    principal = await sync_to_async(principal_for)(user, token)
    user_id = getattr(user, "pk", None) if principal.username else None
    return Guard(principal=principal, policy=current_policy(), rules=DB_RULES, audit=DB_AUDIT,
                 address=request.META.get("REMOTE_ADDR"), origin=request.headers.get("Origin", ""),
                 path=path, user_id=user_id)
