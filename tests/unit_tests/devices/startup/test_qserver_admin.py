"""The admin's device list with OAS_QSERVER_DEVICES: origin, allowed, and the last ask."""

from dataclasses import replace

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from devices.models import DeviceRecord, QserverRegistryState

LIST = "/admin/devices/devicerecord/"


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.org", "pw-123456"))
    DeviceRecord.objects.create(name="det", device_class="ophyd.sim.SynGauss", source="/qs/00.py",
                                origin_kind="qserver", qserver_allowed=True)
    DeviceRecord.objects.create(name="ours", device_class="ophyd.signal.Signal", source="/opt/startup/10.py",
                                origin_kind="folder", qserver_allowed=False)


@pytest.fixture
def following():
    original = settings.OAS
    settings.OAS = replace(original, qserver_devices="merge", qserver_startup_dir="/qs")
    yield
    settings.OAS = original


def test_the_list_shows_where_each_device_came_from_and_whether_it_is_allowed(client, staff, following):
    QserverRegistryState.objects.create(pk=1, mode="merge", user_group="primary", ok=True, asked_at=timezone.now(),
                                        last_good_at=timezone.now(), allowed=["det"], not_allowed=["hidden"],
                                        clashes={"motor": "/opt/startup/10.py"})
    html = client.get(LIST).content.decode()
    assert "Queue Server</td>" in html and "startup folder</td>" in html
    assert 'field-qserver_allowed"><img src="/static/admin/img/icon-yes.svg" alt="True">' in html
    assert 'field-qserver_allowed"><img src="/static/admin/img/icon-no.svg" alt="False">' in html
    assert "it allows 1 device; not allowed and not loaded: hidden." in html
    assert "motor (also in /opt/startup/10.py)" in html


def test_a_failed_ask_is_shown_and_the_last_good_devices_are_said_to_stay(client, staff, following):
    QserverRegistryState.objects.create(pk=1, mode="merge", user_group="primary", ok=False, asked_at=timezone.now(),
                                        last_good_at=timezone.now(), error="status: cannot be reached")
    html = client.get(LIST).content.decode()
    assert "could not be asked" in html and "status: cannot be reached" in html
    assert "The devices from its last good answer" in html and "qs-error" in html


def test_without_following_there_is_no_banner(client, staff):
    assert "Devices from the Queue Server" not in client.get(LIST).content.decode()
