"""The login page: log in, log out, and the throttle against password guessing (SQLite)."""

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def test_login_and_logout(client):
    User.objects.create_user("op", password="pw-123456")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "op", "password": "pw-123456"})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    assert "Log out" in client.get("/").content.decode()
    assert client.post("/accounts/logout/").status_code == 302 and "_auth_user_id" not in client.session


def test_password_guessing_is_throttled_even_for_the_right_password(client):
    User.objects.create_user("op", password="pw-123456")
    for _ in range(5):
        assert client.post("/accounts/login/", {"username": "op", "password": "wrong"}).status_code == 200
    blocked = client.post("/accounts/login/", {"username": "op", "password": "pw-123456"})
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.content.decode()
    assert "_auth_user_id" not in client.session
    other = client.post("/accounts/login/", {"username": "someone", "password": "x"})
    assert other.status_code == 200  # other names from this address are not blocked
