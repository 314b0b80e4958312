"""Who may use a REST endpoint that changes something, and CSRF for browser sessions."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware


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
