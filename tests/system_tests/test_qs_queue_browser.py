"""The Queue Server page's queue in headless Chromium, against a real RE Manager and
bluesky-httpserver (the session's ``queue_server``) behind a real `serve` process.

An operator (``qserver`` rule ``*``) closes and opens the environment, is stopped by the form's
own checks, adds a ``count`` plan, starts the queue and sees it land in the history as
completed; runs a long plan, pauses it (immediate and deferred), resumes it, aborts it, moves
and removes queue items; asks the queue to stop and withdraws it, stops one paused plan and
halts another, clears the queue. Destructive actions ask first: dismissed, nothing is sent;
every action sent has its audit row. A user without the rule sees the server's refusals and
an unchanged queue. A Queue Server that cannot be reached shows the banner, and the page comes back by
itself. Each test leaves the Queue Server idle, its queue empty, its environment as found.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import log_in
from tests.support.ioc import free_port
from tests.support.qserver import API_KEY
from tests.support.server import PROJECT, ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

SETUP_USERS = """
from django.contrib.auth.models import Group, User
from devices.access.models import AccessRule
operators = Group.objects.create(name="operators")
AccessRule.objects.create(name="operators-qserver", pattern="*", level=2, target="qserver").groups.add(operators)
User.objects.create_user("operator", password="op-pass-123").groups.add(operators)
User.objects.create_user("visitor", password="vi-pass-123")
"""
OUTCOME = "document.getElementById('qs-outcome')"
BANNER = "document.getElementById('qs-banner')"


def site_env(folder, queue_server, qserver_port: int) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{folder}/site.sqlite3", "OAS_ANONYMOUS_WRITES": "false",
            "QSERVER_HTTP_SERVER_HOST": "127.0.0.1", "QSERVER_HTTP_SERVER_PORT": str(qserver_port),
            "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": API_KEY,
            "ZMQ_HOST": "127.0.0.1", "ZMQ_PORT": str(queue_server.info_port)}


@pytest.fixture(scope="module")
def site(queue_server, ca_repeater, tmp_path_factory) -> Iterator[ServerProcess]:
    """A server in front of the session's Queue Server, with an operator and a visitor."""
    folder = tmp_path_factory.mktemp("qs_queue_site")
    env = site_env(folder, queue_server, queue_server.http_port)
    server = ServerProcess(env, log_path=folder / "server.log")
    server.start(timeout=60)
    try:
        subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP_USERS], cwd=PROJECT,
                       env={**os.environ, **env}, check=True, capture_output=True, timeout=60)
        server.found_environment = queue_server.status()["worker_environment_exists"]  # type: ignore[attr-defined]
        yield server
    finally:
        server.stop()


def idle(s: dict[str, Any]) -> bool:
    return s.get("manager_state") == "idle" and s.get("re_state") in ("idle", None)


@pytest.fixture
def tidy(queue_server, site) -> Iterator[None]:
    """Afterwards: the Queue Server idle, its queue empty, its environment as the module found it."""
    yield
    status = queue_server.status()
    if status.get("manager_state") == "paused":
        queue_server.call("POST", "/re/abort")
    elif status.get("manager_state") == "executing_queue":
        queue_server.call("POST", "/queue/stop")
    queue_server.wait_for(idle, 60, "the Queue Server to be idle")
    queue_server.call("POST", "/queue/clear")
    if site.found_environment:
        queue_server.open_environment()
    elif queue_server.status().get("worker_environment_exists"):
        assert queue_server.call("POST", "/environment/close")["success"]
        queue_server.wait_for(lambda s: s.get("worker_environment_exists") is False and idle(s), 60,
                              "the environment to close")


async def until(tab, condition: str, timeout: float = 20.0) -> None:
    await tab.wait_for_function(condition, timeout=timeout * 1000)


async def act(tab, click) -> tuple[str, str]:
    """Do `click` (an awaitable) and return the status line's class and text once answered."""
    n = await tab.evaluate(f"Number({OUTCOME}.dataset.n || 0)")
    await click
    await until(tab, f"Number({OUTCOME}.dataset.n) > {n} && {OUTCOME}.dataset.code !== 'sending'")
    return tuple(await tab.evaluate(f"[{OUTCOME}.className, {OUTCOME}.textContent]"))  # type: ignore[return-value]


def button(tab, name: str):
    return tab.get_by_role("button", name=name, exact=True)


async def confirmed(tab, name: str, accept: bool = True) -> tuple[str, str, str]:
    """Click button `name`, accept (or dismiss) its confirmation; the dialog's question and the
    status line's class and text once answered."""
    questions: list[str] = []

    def answer(dialog) -> None:
        questions.append(dialog.message)
        asyncio.ensure_future(dialog.accept() if accept else dialog.dismiss())

    tab.once("dialog", answer)
    cls, text = await act(tab, button(tab, name).click())
    assert len(questions) == 1, (name, questions)
    return questions[0], cls, text


async def add_plan(tab, plan: str, **fields: str) -> tuple[str, str]:
    await tab.select_option("#plan-name", plan)
    for name, text in fields.items():
        await tab.fill(f"#plan-params input[data-param={name}]", text)
    return await act(tab, tab.click("#add-plan button[type=submit]"))


def queue_names(tab) -> Any:
    return tab.evaluate("Array.from(document.querySelectorAll('#queue-rows tr')).map((tr) => tr.dataset.plan)")


def newest(uid: str, exit_status: str) -> str:
    """The history's newest row is item `uid`, ended with `exit_status`."""
    return ("(() => { const tr = document.querySelector('#history-rows tr');"
            f" return tr && tr.dataset.uid === {uid!r} && tr.dataset.exit === {exit_status!r}; }})()")


def state(key: str, value: str) -> str:
    return f"document.body.dataset.{key} === {value!r}"


def running(uid: str = "") -> str:
    """A sleep_plan (item `uid`, if given) runs."""
    plan = "document.getElementById('running').dataset"
    return (f"{plan}.plan === 'sleep_plan' && " + state("re", "running")
            + (f" && {plan}.uid === {uid!r}" if uid else ""))


def audit_since(site: ServerProcess, after: int) -> list[tuple[str, str, str]]:
    """(user, action, outcome) of the server's Queue Server audit rows past id `after`, oldest first."""
    with sqlite3.connect(site.env["DATABASE_URL"].removeprefix("sqlite:///")) as db:
        return db.execute("SELECT username, substr(target, 9), outcome FROM devices_auditentry"
                          " WHERE id > ? AND target LIKE 'qserver:%' ORDER BY id", (after,)).fetchall()


def audit_last_id(site: ServerProcess) -> int:
    with sqlite3.connect(site.env["DATABASE_URL"].removeprefix("sqlite:///")) as db:
        return db.execute("SELECT coalesce(max(id), 0) FROM devices_auditentry").fetchone()[0]


async def open_page(tab, site: ServerProcess, user: str, password: str) -> None:
    await log_in(tab, site.http, user, password)
    await tab.goto(site.http + "/console/queue-server")
    await until(tab, state("qserver", "up"))


async def plans_listed(tab) -> None:
    """The allowed plans are in the form (the Queue Server lists them once an environment opened)."""
    await until(tab, "document.querySelectorAll('#plan-name option').length > 1", 30)


async def test_an_operator_runs_the_queue_from_the_page(page, site, tidy, queue_server):
    await open_page(page, site, "operator", "op-pass-123")
    assert await page.locator("#manager-state").text_content() == "idle"

    if await page.evaluate("document.body.dataset.environment") == "open":
        _, *outcome = await confirmed(page, "Close environment")
        assert outcome[0] == "ok", outcome
        await until(page, state("environment", "closed") + " && " + state("manager", "idle"), 60)
    outcome = await act(page, button(page, "Open environment").click())
    assert outcome[0] == "ok", outcome
    await until(page, state("environment", "open") + " && " + state("manager", "idle"), 60)
    await plans_listed(page)

    # The form's own checks: nothing is sent.
    cls, text = await add_plan(page, "count", num="two")
    assert cls == "refused" and "detectors: is required" in text and "num: expects a whole number" in text, text
    assert await page.locator("#plan-params input[aria-invalid=true]").count() == 2
    assert queue_server.call("GET", "/queue/get")["items"] == []

    cls, text = await add_plan(page, "count", detectors="det", num="2")
    assert cls == "ok" and text.startswith("Add count"), text
    row = page.locator("#queue-rows tr[data-plan=count]")
    await row.wait_for(timeout=10000)
    assert await row.locator("td.user").text_content() == "operator"
    assert await row.locator("td.params").text_content() == 'detectors=["det"], num=2'

    uid = await row.get_attribute("data-uid")
    cls, text = await act(page, button(page, "Start queue").click())
    assert cls == "ok", text
    await until(page, newest(uid, "completed"), 30)
    await until(page, state("manager", "idle") + " && document.querySelectorAll('#queue-rows tr').length === 0")
    assert await page.locator("#history-rows tr >> nth=0 >> td.user").text_content() == "operator"

    # A long plan: paused now, resumed, paused at its next checkpoint, aborted.
    cls, text = await add_plan(page, "sleep_plan", duration="30", steps="60")
    assert cls == "ok", text
    await act(page, button(page, "Start queue").click())
    await until(page, "document.getElementById('running').dataset.plan === 'sleep_plan' && "
                + state("re", "running"))
    assert "operator" in await page.locator("#running").text_content()
    uid = await page.locator("#running").get_attribute("data-uid")
    await until(page, "document.getElementById('console').textContent.includes('sleep_plan step')")
    for name, manager in (("Pause (immediate)", "paused"), ("Resume", "executing_queue"),
                          ("Pause (deferred)", "paused")):
        cls, text = await act(page, button(page, name).click())
        assert cls == "ok", (name, text)
        await until(page, state("manager", manager))
    await until(page, state("re", "paused"))
    question, cls, text = await confirmed(page, "Abort")
    assert cls == "ok" and "front of the queue" in question, text
    await until(page, newest(uid, "aborted"))
    await until(page, state("manager", "idle"))

    # The aborted plan is back in the queue: add another, move, remove.
    await until(page, "document.querySelectorAll('#queue-rows tr').length === 1")
    cls, text = await add_plan(page, "count", detectors="det", num="1")
    assert cls == "ok", text
    await until(page, "document.querySelectorAll('#queue-rows tr').length === 2")
    assert await queue_names(page) == ["sleep_plan", "count"]
    cls, text = await act(page, button(page, "Move down sleep_plan (1)").click())
    assert cls == "ok", text
    await until(page, "document.querySelector('#queue-rows tr').dataset.plan === 'count'")
    assert await queue_names(page) == ["count", "sleep_plan"]
    for name in ("Remove count (1)", "Remove sleep_plan (1)"):
        await button(page, name).wait_for(timeout=10000)
        cls, text = await act(page, button(page, name).click())
        assert cls == "ok", (name, text)
    await until(page, "!document.getElementById('queue-empty').hidden")
    assert queue_server.call("GET", "/queue/get")["items"] == []


async def test_an_operator_stops_the_queue_stops_and_halts_plans_and_clears_the_queue(page, site, tidy,
                                                                                      queue_server):
    await asyncio.to_thread(queue_server.open_environment)  # closed again afterwards if it was
    before = await asyncio.to_thread(audit_last_id, site)
    await open_page(page, site, "operator", "op-pass-123")
    await plans_listed(page)
    for _ in range(2):
        cls, text = await add_plan(page, "sleep_plan", duration="30", steps="60")
        assert cls == "ok", text
    await until(page, "document.querySelectorAll('#queue-rows tr').length === 2")
    cls, text = await act(page, button(page, "Start queue").click())
    assert cls == "ok", text
    await until(page, running())
    first = await page.locator("#running").get_attribute("data-uid")

    # A stop of the queue asked for, then withdrawn: the running plan is not touched.
    for name, pending in (("Stop queue", "yes"), ("Cancel queue stop", "no")):
        cls, text = await act(page, button(page, name).click())
        assert cls == "ok", (name, text)
        await until(page, f"document.getElementById('stop-pending').textContent === {pending!r}")
        assert queue_server.status()["queue_stop_pending"] is (pending == "yes"), name

    # Dismissed: nothing is sent (no audit row, checked below), the queue keeps its plan.
    question, cls, text = await confirmed(page, "Clear queue", accept=False)
    assert "Every plan waiting" in question and text == "Clear queue: cancelled, nothing sent", text
    await page.wait_for_timeout(1500)  # two polls: nothing changed
    assert await page.locator("#queue-rows tr").count() == 1
    assert queue_server.status()["items_in_queue"] == 1

    # Stop ends the paused plan as a success: into the history, not back into the queue.
    cls, text = await act(page, button(page, "Pause (immediate)").click())
    assert cls == "ok", text
    await until(page, state("manager", "paused") + " && " + state("re", "paused"))
    question, cls, text = await confirmed(page, "Stop")
    assert cls == "ok" and "history as stopped" in question, text
    await until(page, newest(first, "stopped"), 30)
    await until(page, state("manager", "idle"))
    second = await page.locator("#queue-rows tr").get_attribute("data-uid")
    assert second != first and await page.locator("#queue-rows tr").count() == 1

    # Halt ends it at once; the Queue Server puts it back at the front of the queue.
    cls, text = await act(page, button(page, "Start queue").click())
    assert cls == "ok", text
    await until(page, running(second))
    cls, text = await act(page, button(page, "Pause (immediate)").click())
    assert cls == "ok", text
    await until(page, state("manager", "paused") + " && " + state("re", "paused"))
    question, cls, text = await confirmed(page, "Halt")
    assert cls == "ok" and "without its cleanup" in question, text
    await until(page, newest(second, "halted"), 30)
    await until(page, state("manager", "idle") + " && document.querySelectorAll('#queue-rows tr').length === 1")

    question, cls, text = await confirmed(page, "Clear queue")
    assert cls == "ok", text
    await until(page, "!document.getElementById('queue-empty').hidden")
    assert queue_server.call("GET", "/queue/get")["items"] == []

    assert await asyncio.to_thread(audit_since, site, before) == [("operator", action, "done") for action in (
        "queue:add", "queue:add", "run:start", "run:stop_queue", "run:cancel_stop_queue", "run:pause", "run:stop",
        "run:start", "run:pause", "run:halt", "queue:clear")]


async def test_a_user_without_the_rule_sees_the_refusal_and_the_queue_unchanged(page, site, tidy, queue_server):
    await asyncio.to_thread(queue_server.open_environment)  # for the allowed plans; closed again afterwards if it was
    await open_page(page, site, "visitor", "vi-pass-123")
    await plans_listed(page)
    cls, text = await add_plan(page, "count", detectors="det")
    assert cls == "refused" and "visitor may not queue:add" in text, text
    environment = await page.evaluate("document.body.dataset.environment")
    cls, text = await act(page, button(page, "Start queue").click())
    assert cls == "refused" and "may not" in text, text
    if environment == "open":
        _, cls, text = await confirmed(page, "Close environment")
    else:
        cls, text = await act(page, button(page, "Open environment").click())
    assert cls == "refused" and "may not" in text, text
    await page.wait_for_timeout(1500)  # two polls: nothing changed
    assert await page.locator("#queue-rows tr").count() == 0
    assert await page.evaluate("document.body.dataset.environment") == environment
    status = queue_server.status()
    assert idle(status) and status["items_in_queue"] == 0


async def test_an_unreachable_queue_server_shows_the_banner_and_the_page_comes_back(page, queue_server, tidy,
                                                                                   tmp_path):
    wrong = ServerProcess(site_env(tmp_path, queue_server, free_port()), log_path=tmp_path / "s1.log")
    wrong.start(timeout=60)
    server = wrong
    try:
        await page.goto(wrong.http + "/console/queue-server")
        await until(page, f"!{BANNER}.hidden && " + state("qserver", "lost"))
        assert "Queue Server" in await page.locator("#qs-banner").text_content()
        wrong.stop()
        server = ServerProcess(site_env(tmp_path, queue_server, queue_server.http_port), port=wrong.port,
                               log_path=tmp_path / "s2.log")
        server.start(timeout=60)
        await until(page, f"{BANNER}.hidden && " + state("qserver", "up") + " && " + state("manager", "idle"), 30)
        assert await page.locator("#manager-state").text_content() == "idle"
    finally:
        server.stop()


HELPERS = """
const q = require(process.argv[1]);
const plan = {name: "count", parameters: [
  {name: "detectors", kind: {value: 1}, annotation: {type: "collections.abc.Sequence[__READABLE__]"}},
  {name: "num", kind: {value: 1}, default: "1", annotation: {type: "int | None"}},
  {name: "delay", kind: {value: 1}, default: "0.0", annotation: {type: "float | collections.abc.Iterable[float]"}},
  {name: "md", kind: {value: 3}, default: "None", annotation: {type: "dict[str, typing.Any] | None"}},
  {name: "extra", kind: {value: 4}}]};
const out = {ok: q.planItem(plan, {detectors: "det det2", num: "None", delay: "[0.1, 0.2]", md: '{"a": 1}',
                                   extra: '{"x": true}'}), errors: []};
for (const texts of [{num: "2.5"}, {detectors: "det", md: "[1]"}, {detectors: "[det"}]) {
  try { q.planItem(plan, texts); } catch (err) { out.errors.push([err.message, err.params]); }
}
out.described = q.describe({args: [1], kwargs: {detectors: ["det"]}});
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None and not os.environ.get("CI"), reason="Node.js is not installed")
def test_the_plan_form_checks_required_fields_and_simple_types():
    script = PROJECT / "static" / "ophydsite" / "qs_queue.js"
    result = subprocess.run(["node", "-e", HELPERS, str(script)], capture_output=True, text=True, timeout=30,
                            check=True)
    out = json.loads(result.stdout)
    assert out["ok"] == {"name": "count", "kwargs": {"detectors": ["det", "det2"], "num": None, "delay": [0.1, 0.2],
                                                     "md": {"a": 1}, "x": True}}
    assert out["errors"] == [
        ['detectors: is required; num: expects a whole number, not "2.5"', ["detectors", "num"]],
        ["md: expects a JSON object", ["md"]],
        [out["errors"][2][0], ["detectors"]]]
    assert out["errors"][2][0].startswith("detectors: not valid JSON")
    assert out["described"] == '1, detectors=["det"]'
