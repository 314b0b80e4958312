"""Admin for access rules (validation, dry run), API tokens and the audit log (SQLite)."""

import pytest
from django.contrib.auth.models import Group, Permission, User

from devices.access.models import AccessRule, ApiToken, AuditEntry, token_hash

pytestmark = pytest.mark.django_db
DRY = "/admin/access-dry-run/"


@pytest.fixture
def root(client):
    user = User.objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(user)
    return user


def add_rule(client, **fields):
    data = {"name": "r", "pattern": "SR:*", "syntax": "glob", "target": "any", "level": "1", "networks": "",
            "enabled": "on", "note": ""} | fields
    return client.post("/admin/devices/accessrule/add/", data)


def test_rule_validation_refuses_bad_regex_and_networks(client, root):
    assert "Not a valid regular expression" in add_rule(client, pattern="(", syntax="regex").content.decode()
    assert "Not a network" in add_rule(client, networks="10.0.0.0/33").content.decode()
    assert add_rule(client).status_code == 302 and AccessRule.objects.count() == 1


def test_dry_run_names_the_deciding_rule(client, root, settings):
    from dataclasses import replace

    settings.OAS = replace(settings.OAS, anonymous_writes=False, auth_required=False)
    ops = Group.objects.create(name="operators")
    alice = User.objects.create_user("alice", password="pw-123456")
    alice.groups.add(ops)
    AccessRule.objects.create(name="sr-read", pattern="SR:*", level=1)
    write = AccessRule.objects.create(name="ops-bpm", pattern="SR:BPM*", level=2, networks="10.1.0.0/16")
    write.groups.add(ops)
    page = client.get(DRY, {"username": "alice", "name": "SR:BPM3", "kind": "pv", "address": "10.1.4.4"})
    text = page.content.decode()
    assert "alice → write" in text and "<strong>ops-bpm</strong>" in text and "sr-read" in text
    page = client.get(DRY, {"username": "alice", "name": "SR:BPM3", "kind": "pv", "address": "10.9.4.4"})
    assert "alice → read" in page.content.decode()
    page = client.get(DRY, {"username": "", "name": "BL:x", "kind": "pv", "address": ""})
    assert "anonymous → read" in page.content.decode() and "the default policy" in page.content.decode()
    assert "No user" in client.get(DRY, {"username": "zed", "name": "x", "kind": "pv"}).content.decode()


def test_dry_run_answers_for_queue_server_actions(client, root, settings):
    from dataclasses import replace

    settings.OAS = replace(settings.OAS, anonymous_writes=False, auth_required=False)
    ops = Group.objects.create(name="operators")
    alice = User.objects.create_user("alice", password="pw-123456")
    alice.groups.add(ops)
    AccessRule.objects.create(name="any-sr", pattern="*", level=2, target="any").groups.add(ops)
    AccessRule.objects.create(name="ops-run", pattern="run:*", level=2, target="qserver").groups.add(ops)
    text = client.get(DRY, {"username": "alice", "name": "run:pause", "kind": "qserver"}).content.decode()
    assert "alice → may act" in text and "<strong>ops-run</strong>" in text and "any-sr" not in text
    text = client.get(DRY, {"username": "alice", "name": "queue:add", "kind": "qserver"}).content.decode()
    assert "alice → may not act" in text and "needs an access rule of target" in text  # "any" rules do not cover it
    text = client.get(DRY, {"username": "", "name": "run:pause", "kind": "qserver"}).content.decode()
    assert "anonymous → may not act" in text


def test_dry_run_needs_the_view_permission(client, db):
    staff = User.objects.create_user("op", password="pw-123456", is_staff=True)
    client.force_login(staff)
    assert client.get(DRY).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_accessrule"))
    assert client.get(DRY).status_code == 200


def test_token_key_is_shown_once_and_stored_hashed(client, root):
    response = client.post("/admin/devices/apitoken/add/", {"label": "align", "user": str(root.pk),
                                                            "expires_at_0": "", "expires_at_1": ""}, follow=True)
    text = response.content.decode()
    assert "is shown only now" in text
    key = text.split("copy it: ")[1].split("<")[0].strip()
    token = ApiToken.objects.get(label="align")
    assert token.key_hash == token_hash(key) and key not in client.get(
        f"/admin/devices/apitoken/{token.pk}/change/").content.decode()


def test_audit_is_read_only_and_exports_csv(client, root):
    entry = AuditEntry.objects.create(username="alice", path="pv-socket", target="SR:x", value_requested="5",
                                      outcome="done", rule="ops")
    assert client.get(f"/admin/devices/auditentry/{entry.pk}/change/").status_code == 200
    assert client.post(f"/admin/devices/auditentry/{entry.pk}/delete/").status_code == 403
    response = client.post("/admin/devices/auditentry/", {"action": "export_csv", "_selected_action": [entry.pk]})
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("at,username,token") and "SR:x" in lines[1] and "done" in lines[1]
