"""The admin says what it is: its name, labels that spell acronyms as people do, and a device
list that is ordered and searchable (SQLite, Django's test client)."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import User

from devices.models import DeviceRecord

DEVICES = "/admin/devices/devicerecord/"
# Acronyms an operator reads in capitals; Django's capfirst makes "Api token" of "api token".
ACRONYM = re.compile(r"\b(api|pvs?|ip|url|ioc|json|csv|rbv|fps|roi|id|uid)\b", re.IGNORECASE)
LABEL = re.compile(r"<label[^>]*>([^<]+)</label>|<caption>\s*<a[^>]*>([^<]+)</a>|<th[^>]*>\s*<a[^>]*>([^<]+)</a>")


@pytest.fixture
def superuser(client, db):
    user = User.objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(user)
    return user


def test_site_is_named_ophydsite(client, superuser):
    html = client.get("/admin/").content.decode()
    assert re.search(r"<title>[^<]*\| ophydsite</title>", html)
    assert re.search(r'<div id="site-name"><a href="/admin/">ophydsite</a></div>', html)
    assert "Django administration" not in html and "Django site admin" not in html


def admin_pages() -> list[str]:
    pages = ["/admin/"]
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        pages += [base, base + "add/"]
    return pages


def test_every_label_spells_its_acronyms_in_capitals(client, superuser):
    wrong: list[tuple[str, str]] = []
    for url in admin_pages():
        response = client.get(url)
        if response.status_code != 200:
            continue  # read-only lists have no add page
        for groups in LABEL.findall(response.content.decode()):
            text = " ".join(g for g in groups if g).strip()
            wrong += [(url, text) for word in ACRONYM.findall(text) if not word.isupper() and word != "PVs"]
    assert not wrong


def test_names_read_well_on_the_index(client, superuser):
    html = client.get("/admin/").content.decode()
    for name in ("API tokens", "Devices", "Audit entries", "Access rules", "Startup files", "Cameras"):
        assert f">{name}</a>" in html, name


def test_device_list_is_ordered_by_name_and_searchable(client, superuser):
    for name, cls in (("stage_x", "ophyd.EpicsMotor"), ("m1", "ophyd.EpicsMotor"), ("det", "ophyd.sim.Det")):
        DeviceRecord.objects.create(name=name, device_class=cls, source="10_devices.py")
    assert listed(client, DEVICES) == ["det", "m1", "stage_x"]
    assert listed(client, DEVICES + "?q=Motor") == ["m1", "stage_x"]
    assert listed(client, DEVICES + "?device_class=ophyd.sim.Det") == ["det"]


def listed(client, url: str) -> list[str]:
    """Device names in the change list's rows, top to bottom."""
    return re.findall(r'<th class="field-name"><a [^>]*>([^<]+)</a>', client.get(url).content.decode())
