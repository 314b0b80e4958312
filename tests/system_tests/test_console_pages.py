"""Server-rendered console pages: the audit view is for staff only and filters; every page
renders and links the others."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient

from devices.access.models import AuditEntry

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


async def test_audit_view_is_for_staff_and_filters():
    anonymous = await AsyncClient().get("/console/audit")
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]

    @sync_to_async
    def prepare() -> tuple[User, User]:
        for i, (user, target, outcome) in enumerate([("op", "DEMO:m1:sp", "done"), ("op", "motor1", "refused"),
                                                     ("", "DEMO:m2:sp", "interlocked")]):
            AuditEntry.objects.create(username=user, target=target, outcome=outcome, path="pv-socket",
                                      value_requested=str(i), message="m", client="10.0.0.1")
        staff = User.objects.create_user("boss", password="pw-123456", is_staff=True)
        plain = User.objects.create_user("plain", password="pw-123456")
        return staff, plain

    staff, plain = await prepare()
    browser = AsyncClient()
    await browser.aforce_login(plain)
    assert (await browser.get("/console/audit")).status_code == 302  # not staff
    await browser.aforce_login(staff)
    page = (await browser.get("/console/audit")).content.decode()
    assert "DEMO:m1:sp" in page and "motor1" in page and "3 most recent of 3" in page
    only_refused = (await browser.get("/console/audit?outcome=refused")).content.decode()
    assert "motor1" in only_refused and "DEMO:m1:sp" not in only_refused
    by_target = (await browser.get("/console/audit?target=m2")).content.decode()
    assert "DEMO:m2:sp" in by_target and "anonymous" in by_target and "1 most recent of 1" in by_target
    assert 'href="/console/audit"' in page  # staff see the link in the header


@pytest.mark.parametrize("path", ["/", "/console/pvs", "/console/devices", "/console/camera",
                                  "/console/queue-server"])
async def test_every_console_page_renders_with_the_navigation(path):
    page = await AsyncClient().get(path)
    assert page.status_code == 200
    text = page.content.decode()
    for link in ("/console/pvs", "/console/devices", "/console/camera", "/console/queue-server"):
        assert f'href="{link}"' in text, (path, link)
    assert 'name="viewport"' in text  # laptop and control-room widths
