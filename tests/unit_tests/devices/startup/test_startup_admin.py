"""Startup files in the database and the admin (SQLite, Django's test client)."""

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from devices.models import StartupFile, StartupFileVersion
from devices.startup.services import startup_sources

ADD = "/admin/devices/startupfile/add/"
GOOD = "from ophyd import Signal\nsig = Signal(name='sig', value=1)\n"


@pytest.fixture
def superuser(client, db):
    user = User.objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(user)
    return user


def post(client, **fields):
    data = {"name": "10_x.py", "enabled": "on", "order": "100", "content": GOOD,
            "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"} | fields
    return client.post(ADD, data)


def test_add_page_renders(client, superuser):
    assert client.get(ADD).status_code == 200


def test_syntax_error_is_refused_before_saving(client, superuser):
    response = post(client, content="def broken(:\n    pass\n")
    assert response.status_code == 200
    assert "Syntax error at line 1" in response.content.decode()
    assert not StartupFile.objects.exists()


def test_saving_keeps_every_version(client, superuser):
    assert post(client).status_code == 302
    file = StartupFile.objects.get(name="10_x.py")
    change = f"/admin/devices/startupfile/{file.pk}/change/"
    data = {"name": "10_x.py", "enabled": "on", "order": "5", "content": GOOD + "x = 2\n",
            "versions-TOTAL_FORMS": "1", "versions-INITIAL_FORMS": "1",
            "versions-0-id": str(file.versions.get().pk), "versions-0-file": str(file.pk)}
    assert client.post(change, data).status_code == 302
    versions = list(StartupFileVersion.objects.filter(file_name="10_x.py").order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].content == GOOD and versions[1].content.endswith("x = 2\n")
    assert versions[1].changed_by == superuser
    file.delete()
    assert StartupFileVersion.objects.filter(file_name="10_x.py").count() == 2  # history survives


def test_upload_and_size_cap(client, superuser, settings):
    upload = SimpleUploadedFile("20_up.py", GOOD.encode())
    assert post(client, name="", content="", upload=upload).status_code == 302
    assert StartupFile.objects.get(name="20_up.py").content == GOOD
    from dataclasses import replace
    settings.OAS = replace(settings.OAS, startup_max_bytes=20)
    response = post(client, name="30_big.py")
    assert "OAS_STARTUP_MAX_BYTES" in response.content.decode()


def test_bad_file_names_are_refused(client, superuser):
    response = post(client, name="../etc/passwd")
    assert "file name like" in response.content.decode()


def test_staff_without_superuser_cannot_see_startup_files(client, db):
    staff = User.objects.create_user("op", password="pw-123456", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/devices/startupfile/").status_code == 403
    assert client.get(ADD).status_code == 403


def test_database_file_overrides_a_folder_file_of_the_same_name(db, tmp_path):
    (tmp_path / "00_a.py").write_text("a = 1\n")
    (tmp_path / "10_b.py").write_text("b = 1\n")
    StartupFile.objects.create(name="10_b.py", content="b = 2\n", order=1)
    StartupFile.objects.create(name="05_c.py", content="c = 1\n", order=2)
    StartupFile.objects.create(name="99_off.py", content="d = 1\n", enabled=False)
    sources = startup_sources(startup_dir=str(tmp_path))
    assert [(s.name, s.origin.startswith("db:")) for s in sources] == [
        ("00_a.py", False), ("10_b.py", True), ("05_c.py", True)]
    assert sources[1].code == "b = 2\n"
