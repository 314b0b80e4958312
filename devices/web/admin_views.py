"""The admin's "reload devices" page: needs the devices.reload_devices permission.

An async view, because the reload goes through this process's hub to the bridge, which in
the embedded mode lives on the server's event loop (a sync admin view runs on a thread).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from devices.rest.api import RELOAD_TIMEOUT_S
from devices.services.runtime import get_hub


async def reload_devices(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    if not (user.is_active and user.is_staff):
        return redirect_to_login(request.get_full_path(), "/admin/login/")
    if not await sync_to_async(user.has_perm)("devices.reload_devices"):
        return JsonResponse({"error": "Reloading devices needs the 'Can reload devices' permission"}, status=403)
    if request.method != "POST":
        response = JsonResponse({"error": "Send POST (the button on the device list) to reload"}, status=405)
        response["Allow"] = "POST"
        return response
    hub = await get_hub()
    outcome = await hub.reload_devices(RELOAD_TIMEOUT_S)
    context = {"outcome": outcome, "title": "Reload devices", "user": user,
               "has_permission": True, "site_header": admin.site.site_header,
               "site_title": admin.site.site_title}
    return await sync_to_async(render)(request, "admin/devices/reload_result.html", context)
