"""The admin's reload button: permission, the result page, and the button itself."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User

from devices.models import StartupFile

pytestmark = [pytest.mark.system, pytest.mark.timeout(60), pytest.mark.django_db(transaction=True)]

URL = "/admin/reload-devices/"


@sync_to_async
def make_user(name: str, *, can_reload: bool) -> User:
    user = User.objects.create_user(name, password="pw-123456", is_staff=True)
    if can_reload:
        user.user_permissions.add(Permission.objects.get(codename="reload_devices"))
        user.user_permissions.add(Permission.objects.get(codename="view_devicerecord"))
    return user


async def test_staff_with_permission_reloads_and_sees_per_file_results(ioc, async_client):
    await sync_to_async(StartupFile.objects.create)(name="70_ok.py", content=(
        "from ophyd import EpicsSignal\nsp = EpicsSignal('TST:m3:sp', name='m3_sp')\n"))
    await sync_to_async(StartupFile.objects.create)(name="80_bad.py", content="raise KeyError('nope')\n")
    await async_client.aforce_login(await make_user("operator", can_reload=True))
    listing = await async_client.get("/admin/devices/devicerecord/")
    assert listing.status_code == 200 and "Reload devices" in listing.content.decode()
    response = await async_client.post(URL)
    page = response.content.decode()
    assert response.status_code == 200
    assert "70_ok.py" in page and "m3_sp" in page and "KeyError" in page and "80_bad.py" in page


async def test_staff_without_permission_is_refused(async_client):
    await async_client.aforce_login(await make_user("viewer", can_reload=False))
    response = await async_client.post(URL)
    assert response.status_code == 403 and "permission" in response.json()["error"]


async def test_anonymous_is_sent_to_login(async_client):
    response = await async_client.post(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


async def test_device_list_shows_live_connection_state_and_component_tree(ioc, async_client):
    from devices.models import DeviceRecord

    await sync_to_async(StartupFile.objects.create)(name="70_devices.py", content=(
        "from ophyd import Component as Cpt, Device, EpicsSignal\n"
        "class Pair(Device):\n"
        "    a = Cpt(EpicsSignal, 'm1:sp')\n"
        "    b = Cpt(EpicsSignal, 'm2:sp')\n"
        "pair = Pair('TST:', name='pair')\n"
        "ghost = EpicsSignal('TST:not_served', name='ghost')\n"))
    user = await make_user("operator", can_reload=True)
    await async_client.aforce_login(user)
    assert (await async_client.post(URL)).status_code == 200

    async def states():
        return dict(await sync_to_async(list)(DeviceRecord.objects.values_list("name", "connected")))

    for _ in range(100):
        now = await states()
        if now.get("pair") is True and now.get("ghost") is False:
            break
        await asyncio.sleep(0.1)
    assert now == {"pair": True, "ghost": False}
    record = await sync_to_async(DeviceRecord.objects.get)(name="pair")
    page = (await async_client.get(f"/admin/devices/devicerecord/{record.pk}/change/")).content.decode()
    assert "<code>a</code> pair_a" in page and "TST:m1:sp" in page and "TST:m2:sp" in page
