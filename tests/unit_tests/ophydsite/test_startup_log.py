"""The start-up settings line: every effective setting, secrets masked."""

from __future__ import annotations

from ophydsite.settings.oas import OasSettings
from ophydsite.startup_log import MASK, effective_settings, mask_url


def test_passwords_in_urls_are_masked_and_other_urls_kept_exactly():
    assert mask_url("postgres://ops:s3cret@db.lab:5432/ophydsite") == "postgres://ops:***@db.lab:5432/ophydsite"
    assert mask_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("postgres://ops@db/x?sslmode=require&password=s3cret") == (
        "postgres://ops@db/x?sslmode=require&password=***")
    for kept in ("sqlite:////var/lib/ophydsite/db.sqlite3", "redis://127.0.0.1:6379/3", "rediss://ops@redis/0"):
        assert mask_url(kept) == kept
    assert mask_url(None) is None


def test_effective_settings_name_every_variable_and_mask_secrets():
    env = {"OAS_ALLOWED_ORIGINS": "https://portal.lab", "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": "k-123",
           "EPICS_CA_ADDR_LIST": "10.0.0.255", "EPICS_PVA_NAME_SERVERS": "10.0.0.5:5075",
           "DATABASE_URL": "postgres://ops:pw@db/site", "REDIS_URL": "redis://:pw@redis:6379/0",
           "DJANGO_SECRET_KEY": "django-secret", "OAS_REDIS_PREFIX": "bl7"}
    values = effective_settings("server", OasSettings.from_env(env), env, {"OAS_PORT": 8002})
    assert values["role"] == "server" and values["OAS_PORT"] == 8002
    assert values["OAS_ALLOWED_ORIGINS"] == ["https://portal.lab"]
    assert values["OAS_BRIDGE"] == "external" and values["OAS_AUTH_REQUIRED"] is False
    assert values["EPICS_CA_ADDR_LIST"] == "10.0.0.255" and values["EPICS_CA_AUTO_ADDR_LIST"] is None
    assert values["EPICS_PVA_NAME_SERVERS"] == "10.0.0.5:5075"
    assert values["QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY"] == MASK
    assert values["DJANGO_SECRET_KEY"] == MASK
    assert values["DATABASE_URL"] == "postgres://ops:***@db/site"
    assert values["REDIS_URL"] == "redis://:***@redis:6379/0" and values["OAS_REDIS_PREFIX"] == "bl7"
    for field in ("OAS_LOG_FORMAT", "OAS_BRIDGE_SHARDS", "OAS_TRUSTED_PROXIES", "OAS_ANONYMOUS_WRITES"):
        assert field in values
    text = repr(values)
    assert "k-123" not in text and "django-secret" not in text and ":pw@" not in text


def test_unset_secrets_say_so():
    values = effective_settings("bridge shard 0/1", OasSettings.from_env({}), {})
    assert values["DJANGO_SECRET_KEY"].startswith("(not set")
    assert values["DATABASE_URL"].startswith("sqlite") and values["REDIS_URL"] is None
