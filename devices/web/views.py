"""Small HTTP views: the start page, the probes (health, liveness, readiness)."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from camera.cameras import camera_stats
from devices.services.runtime import embedded_bridge
from devices.web.readiness import readiness, readiness_answer


def index(request: HttpRequest) -> HttpResponse:
    """A live PV table so a newcomer sees the server working; demo PVs are prefilled."""
    prefix = os.environ.get("OAS_DEMO_PREFIX", "")
    demo = [f"{prefix}{s}" for s in ("m1:sp", "m1:rbv", "sine", "counter", "mode", "label",
                                     "longtext", "wave", "temp", "flaky")] if prefix else []
    return render(request, "index.html", {"demo_pvs": demo + _demo_pva(("sine", "setpoint", "mode", "wave"))})


def _demo_pva(names: tuple[str, ...]) -> list[str]:
    """The demo PV Access server's PVs (``serve --demo``), as ``pva://`` names."""
    prefix = os.environ.get("OAS_DEMO_PVA_PREFIX", "")
    return [f"pva://{prefix}{name}" for name in names] if prefix else []


def console_pvs(request: HttpRequest) -> HttpResponse:
    """The operator console's PV page; ``?pv=A&pv=B`` (or the demo's) are watched at once."""
    prefix = os.environ.get("OAS_DEMO_PREFIX", "")
    initial = request.GET.getlist("pv") or ([f"{prefix}m1:sp", f"{prefix}m1:rbv", f"{prefix}sine"] if prefix else []
                                            ) + _demo_pva(("sine", "setpoint"))
    return render(request, "console/pvs.html", {"initial_pvs": initial[:50]})


def console_devices(request: HttpRequest) -> HttpResponse:
    """The operator console's device page: every registry device with its signals, live."""
    return render(request, "console/devices.html")


def console_camera(request: HttpRequest) -> HttpResponse:
    """The operator console's camera viewer (``?camera=name``; the simulation by default)."""
    return render(request, "console/camera.html", {"camera": request.GET.get("camera", "sim")[:100]})


def console_qs(request: HttpRequest) -> HttpResponse:
    """The Queue Server console view."""
    return render(request, "console/qs_console.html")


@staff_member_required
def console_audit(request: HttpRequest) -> HttpResponse:
    """The last 200 audit rows for staff, filtered by user, target or outcome."""
    from devices.access.models import AuditEntry

    filters = {key: request.GET.get(key, "").strip()[:150] for key in ("user", "target", "outcome")}
    rows = AuditEntry.objects.all()
    if filters["user"]:
        rows = rows.filter(username__icontains=filters["user"])
    if filters["target"]:
        rows = rows.filter(target__icontains=filters["target"])
    if filters["outcome"]:
        rows = rows.filter(outcome=filters["outcome"])
    return render(request, "console/audit.html", {"rows": list(rows.order_by("-at")[:200]), "total": rows.count(),
                                                  "filters": filters, "outcomes": AuditEntry.Outcome.choices})


async def health(request: HttpRequest) -> JsonResponse:
    """Liveness plus what this process's bridge holds (embedded mode only)."""
    bridge = embedded_bridge()
    body = {
        "status": "ok",
        "bridge": settings.OAS.bridge,
        "channel_layer": "redis" if getattr(settings, "REDIS_URL", None) else "in-memory",
    }
    if bridge is not None:
        body["pvs"] = len(bridge.entries)
        body["published"] = bridge.publisher.sent
    body["cameras"] = camera_stats()
    return JsonResponse(body)


async def livez(request: HttpRequest) -> JsonResponse:
    """Liveness: the process and its event loop answer. Touches nothing else, so a database
    or Redis outage never gets the process restarted (that is what /readyz reports)."""
    return JsonResponse({"status": "ok"})


async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database, Redis (if used), the bridge and the startup load are
    all fine, else 503; the body names every check and what fails (devices/web/readiness.py)."""
    status, body = readiness_answer(await readiness())
    return JsonResponse(body, status=status)
