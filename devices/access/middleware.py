"""API tokens on HTTP requests (REST): ``Authorization: Bearer <key>``, never the URL."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from ophydsite.token_auth import url_has_token

from .tokens import api_token_authenticate, bearer_key


class ApiTokenMiddleware:
    """After Django's AuthenticationMiddleware: a valid token sets ``request.user``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if url_has_token(request.META.get("QUERY_STRING", "").encode("latin-1")):
            return JsonResponse({"error": "API tokens are accepted only in the Authorization header, "
                                          "never in the URL"}, status=400)
        header = request.META.get("HTTP_AUTHORIZATION")
        if header:
            key = bearer_key(header)
            if key is None:
                return JsonResponse({"error": "The Authorization header must be 'Bearer <token>'"}, status=401)
            token, why = api_token_authenticate(key)
            if token is None:
                return JsonResponse({"error": f"Not authenticated: {why}"}, status=401)
            request.user = token.user
            request.api_token = token.label  # type: ignore[attr-defined]
            # A token is not a browser cookie: cross-site request forgery does not apply.
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)
