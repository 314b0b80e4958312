"""The admin's live status page and its "close socket" form (staff only).

The page renders once and then polls ``/api/v1/status`` every few seconds; the close form
posts here (CSRF-protected by Django's middleware) and the result page links back.
Async views: closing goes through this process's status node on the server's event loop.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .api import staff_of
from .registry import CLOSE_BY_STAFF
from .services import socket_close

REFRESH_S = 3


async def _admin_page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    def draw() -> HttpResponse:
        return render(request, template, {**admin.site.each_context(request), **context}, status=status)

    return await sync_to_async(draw)()


async def status_page(request: HttpRequest) -> HttpResponse:
    staff = await staff_of(request, "admin")
    if isinstance(staff, tuple):
        return redirect_to_login(request.get_full_path(), "/admin/login/")
    return await _admin_page(request, "admin/status.html", {"title": "Live status", "refresh_s": REFRESH_S,
                                                            "close_code": CLOSE_BY_STAFF})


async def status_close(request: HttpRequest) -> HttpResponse:
    staff = await staff_of(request, "admin")
    if isinstance(staff, tuple):
        return redirect_to_login("/admin/status/", "/admin/login/")
    if request.method != "POST":
        response = JsonResponse({"error": "Send POST (the Close button of the status page)",
                                 "code": "method_not_allowed"}, status=405)
        response["Allow"] = "POST"
        return response
    status, body = await socket_close(staff=staff, process=request.POST.get("process", "").strip(),
                                      socket=request.POST.get("socket", "").strip())
    return await _admin_page(request, "admin/status_closed.html", {"title": "Close socket", "status": status,
                                                                   "body": body}, status=status)
