"""When the bridge reloads for the Queue Server: the status fields its registry was built from."""

from devices.bridge.qserver_follow import QserverFollower
from qsconsole.qs_http import QsHttp

STATUS = {"devices_allowed_uid": "a1", "devices_existing_uid": "e1", "worker_environment_exists": True,
          "manager_state": "idle", "plans_allowed_uid": "p1"}


async def _never() -> None:
    raise AssertionError("not reloaded in this test")


def follower() -> QserverFollower:
    return QserverFollower(client=QsHttp(base_url="http://127.0.0.1:9", api_key="k", timeout_s=1),
                           period_s=1, reload=_never)


def test_a_reload_remembers_the_state_it_was_built_from_and_other_fields_do_not_count():
    f = follower()
    assert f.wants_reload(STATUS)  # nothing loaded from it yet
    f.reloaded({"qserver": {"key": ["a1", "e1", True]}})
    assert not f.wants_reload({**STATUS, "manager_state": "executing_queue", "plans_allowed_uid": "p2"})
    assert f.wants_reload({**STATUS, "devices_allowed_uid": "a2"})
    assert f.wants_reload({**STATUS, "worker_environment_exists": False})


def test_a_reload_that_could_not_ask_makes_the_next_answer_count():
    f = follower()
    f.reloaded({"qserver": {"key": None}})
    assert f.wants_reload(STATUS)


async def test_an_unreachable_queue_server_does_not_reload():
    assert await follower().check() is False  # port 9 (discard) refuses: no reload, no exception
