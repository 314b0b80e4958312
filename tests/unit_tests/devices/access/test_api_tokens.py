"""API tokens: shown once, stored hashed, revoked, expired, deactivated users (SQLite)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from devices.access.models import ApiToken
from devices.access.tokens import api_token_authenticate, api_token_create, api_token_revoke, bearer_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return User.objects.create_user("script", password="pw-123456")


def test_key_is_not_stored_and_authenticates(user):
    token, key = api_token_create(user=user, label="align")
    assert key.startswith("oas_") and len(key) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert key not in (stored.key_hash, stored.prefix) and stored.key_hash != key
    found, why = api_token_authenticate(key)
    assert found == token and why == "" and found.last_used_at is not None


def test_revoked_expired_unknown_and_inactive_are_refused(user):
    token, key = api_token_create(user=user, label="a")
    api_token_revoke(token=token)
    assert api_token_authenticate(key) == (None, "the API token was revoked")
    _, old = api_token_create(user=user, label="b", expires_at=timezone.now() - timedelta(seconds=1))
    assert api_token_authenticate(old)[1] == "the API token has expired"
    assert api_token_authenticate("oas_" + "x" * 43)[1] == "unknown API token"
    _, live = api_token_create(user=user, label="c")
    user.is_active = False
    user.save()
    assert api_token_authenticate(live)[1] == "the token's user is deactivated"


def test_authorization_header_forms():
    assert bearer_key("Bearer oas_abc") == "oas_abc" and bearer_key("token oas_abc") == "oas_abc"
    assert bearer_key("Basic dXNlcjpwdw==") is None and bearer_key("Bearer ") is None
