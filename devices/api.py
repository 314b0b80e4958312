"""HTTP endpoints of the devices app (ophyd-websocket's REST surface grows here)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .access.http import rest_write_refusal
from .runtime import get_hub

RELOAD_TIMEOUT_S = 120.0


@csrf_exempt  # checked in rest_write_refusal: scripts (token or compat mode) have no CSRF token
async def load_devices(request: HttpRequest) -> JsonResponse:
    """Reload the startup files; per-file errors are in the body, the status says if it ran."""
    if request.method != "POST":
        response = JsonResponse({"error": f"{request.method} is not allowed here; send POST to reload devices"},
                                status=405)
        response["Allow"] = "POST"
        return response
    refusal = await rest_write_refusal(request, permission="devices.reload_devices", what="Reloading devices")
    if refusal is not None:
        return refusal
    hub = await get_hub()
    outcome = await hub.reload_devices(RELOAD_TIMEOUT_S)
    status = 503 if outcome.get("status") == "bridge_unavailable" else 200
    return JsonResponse(outcome, status=status)
