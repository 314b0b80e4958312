import pytest

from ophydsite.origins import origin_allowed
from ophydsite.settings.oas import OasSettings


def test_defaults_match_ophyd_websocket():
    s = OasSettings.from_env({})
    assert (s.host, s.port, s.log_level, s.bridge) == ("localhost", 8001, "INFO", "embedded")


def test_environment_is_parsed_and_typed():
    s = OasSettings.from_env({"OAS_PORT": "9000", "OAS_ALLOWED_ORIGINS": "http://a:1, http://b/",
                              "OAS_REQUIRE_QSERVER": "true", "OAS_SCALAR_RATE_HZ": "5"})
    assert s.port == 9000 and s.allowed_origins == ("http://a:1", "http://b")
    assert s.require_qserver is True and s.scalar_rate_hz == 5.0


def test_redis_selects_external_bridge_unless_told_otherwise():
    assert OasSettings.from_env({"REDIS_URL": "redis://x"}).bridge == "external"
    assert OasSettings.from_env({"REDIS_URL": "redis://x", "OAS_BRIDGE": "embedded"}).bridge == "embedded"


def test_bad_values_name_the_variable():
    with pytest.raises(ValueError, match="OAS_PORT"):
        OasSettings.from_env({"OAS_PORT": "eighty"})
    with pytest.raises(ValueError, match="OAS_BRIDGE"):
        OasSettings.from_env({"OAS_BRIDGE": "sideways"})


def test_origins():
    assert origin_allowed("http://srv:8001", "srv:8001", ())
    assert origin_allowed("http://localhost:3000", "srv:8001", ())
    assert not origin_allowed("http://evil.example", "srv:8001", ())
    assert origin_allowed("https://portal.lab", "srv:8001", ("https://portal.lab",))
    assert not origin_allowed("http://localhost:3000", "srv:8001", ("https://portal.lab",))
    assert not origin_allowed("null", "srv:8001", ())


def test_serve_environment_wins_over_arguments():
    from django.core.management.base import CommandError

    from devices.management.commands.serve import listen_settings

    options = {"host": "0.0.0.0", "port": 9000, "startup_dir": "/a"}
    assert listen_settings(options, {}) == ("0.0.0.0", 9000, "/a")
    env = {"OAS_HOST": "127.0.0.1", "OAS_PORT": "8002", "OAS_STARTUP_DIR": "/b"}
    assert listen_settings(options, env) == ("127.0.0.1", 8002, "/b")
    with pytest.raises(CommandError, match="OAS_PORT"):
        listen_settings(options, {"OAS_PORT": "http"})


async def test_in_memory_groups_outlive_a_day():
    """A hub joins the registry group once; a week later it must still hear reloads."""
    import time

    from channels.layers import InMemoryChannelLayer

    from ophydsite.settings.infra import channel_layers

    layer = InMemoryChannelLayer(**channel_layers(None)["default"]["CONFIG"])
    channel = await layer.new_channel()
    await layer.group_add("devices.registry", channel)
    layer.groups["devices.registry"][channel] = time.time() - 7 * 24 * 3600  # joined a week ago
    await layer.group_send("devices.registry", {"type": "devices.reloaded"})
    assert (await layer.receive(channel))["type"] == "devices.reloaded"


def test_sqlite_commits_through_a_write_ahead_log_and_stay_durable(tmp_path, monkeypatch, django_db_blocker):
    """Each set commits twice (pending row, outcome): in WAL mode with one fsync of the log
    each, and synchronous=FULL so a committed pending row survives a power cut."""
    from django.db.utils import ConnectionHandler

    from ophydsite.settings.infra import databases

    monkeypatch.delenv("DATABASE_URL", raising=False)
    handler = ConnectionHandler({"default": databases(tmp_path)["default"]})
    connection = handler["default"]
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:  # a file of its own, not the test database
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 2  # FULL
    finally:
        connection.close()
    assert (tmp_path / "db.sqlite3").exists()
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x")
    assert "init_command" not in databases(tmp_path)["default"].get("OPTIONS", {})


def test_queue_server_devices_need_a_known_mode_and_the_startup_folder():
    s = OasSettings.from_env({"OAS_QSERVER_DEVICES": "merge", "OAS_QSERVER_STARTUP_DIR": "/qs/startup",
                              "OAS_QSERVER_USER_GROUP": "admin"})
    assert (s.qserver_devices, s.qserver_startup_dir, s.qserver_user_group) == ("merge", "/qs/startup", "admin")
    with pytest.raises(ValueError, match="OAS_QSERVER_DEVICES: must be"):
        OasSettings.from_env({"OAS_QSERVER_DEVICES": "all", "OAS_QSERVER_STARTUP_DIR": "/qs"})
    with pytest.raises(ValueError, match="needs OAS_QSERVER_STARTUP_DIR"):
        OasSettings.from_env({"OAS_QSERVER_DEVICES": "only"})
