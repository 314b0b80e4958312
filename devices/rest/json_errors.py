"""Every error under /api/ is JSON, including the ones Django and django-ninja render
themselves (unknown path 404, method not allowed 405, server error 500)."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

_TEXTS = {404: "No such endpoint", 405: "Method not allowed here", 500: "Internal server error; see the server log"}


class JsonApiErrorsMiddleware:
    """Rewrites a non-JSON 4xx/5xx answer of an /api/ path as ``{"error", "code"}``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not request.path.startswith("/api/"):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        text = _TEXTS.get(response.status_code, "Request failed")
        body: dict[str, object] = {"error": f"{text}: {request.method} {request.path}",
                                   "code": {404: "not_found", 405: "method_not_allowed"}.get(
                                       response.status_code, "error")}
        allowed = response.get("Allow")
        if allowed:
            body["allowed"] = [m.strip() for m in allowed.split(",")]
            body["error"] += f" (allowed: {allowed})"
        rewritten = JsonResponse(json.loads(json.dumps(body)), status=response.status_code)
        if allowed:
            rewritten["Allow"] = allowed
        return rewritten
