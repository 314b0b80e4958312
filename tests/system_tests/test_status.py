"""The live status (issue 16, item 3) of real server processes with real sockets: what
/api/v1/status lists in the embedded mode, who may read it, staff closing a socket (audited),
and in scaled mode on Redis one status merged from every process."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.support.redis_check import redis_available
from tests.support.server import PROJECT, ServerProcess
from tests.support.wsclient import read_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

P = "TST:"
DEVICES = "from ophyd import EpicsSignal\nm3 = EpicsSignal('TST:m3:sp', name='m3')\n"
PASSWORD = "pw-123456"
# Run in the server's database: migrate, a staff and a plain user, an API token of each.
ACCOUNTS = """
import json
from django.contrib.auth.models import User
from django.core.management import call_command
from devices.access.tokens import api_token_create
call_command("migrate", interactive=False, verbosity=0)
PASSWORD = "pw-123456"
boss = User.objects.create_user("boss", password=PASSWORD, is_staff=True)
plain = User.objects.create_user("plain", password=PASSWORD)
print("ACCOUNTS " + json.dumps({"staff": api_token_create(user=boss, label="ops")[1],
                                "plain": api_token_create(user=plain, label="gui")[1]}))
"""


def accounts(env: dict[str, str]) -> dict[str, str]:
    """Staff and plain API keys, created in the database of ``env``."""
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", ACCOUNTS], cwd=PROJECT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("ACCOUNTS "))
    return json.loads(line.removeprefix("ACCOUNTS "))


class Site:
    """A server process with its database file and API keys."""

    def __init__(self, server: ServerProcess, db: Path, keys: dict[str, str]) -> None:
        self.server, self.db, self.keys = server, db, keys

    def call(self, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server.http + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    async def status(self, key: str = "staff") -> dict[str, Any]:
        code, body = await asyncio.to_thread(self.call, "GET", "/api/v1/status", key)
        assert code == 200, body
        return body

    async def close(self, process: str, socket_id: str, key: str = "staff") -> tuple[int, dict[str, Any]]:
        return await asyncio.to_thread(self.call, "POST", "/api/v1/status/close", key,
                                       {"process": process, "socket": socket_id})

    def audit(self, socket_id: str) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute("SELECT * FROM devices_auditentry WHERE target LIKE ? ORDER BY id",
                                (f"%/{socket_id}",)).fetchall()


@pytest.fixture(scope="module")
def site(ioc, tmp_path_factory):
    """One embedded server (bridge in-process, in-memory layer) with the device m3."""
    tmp = tmp_path_factory.mktemp("status")
    db = tmp / "status.sqlite3"
    (tmp / "devices.py").write_text(DEVICES)
    env = {"DATABASE_URL": f"sqlite:///{db}", "OAS_STARTUP_DIR": str(tmp / "devices.py")}
    keys = accounts(env)
    proc = ServerProcess(env).start()
    yield Site(proc, db, keys)
    proc.stop()


async def subscribed_pv_socket(site: Site, pvs: list[str]) -> Any:
    conn = await websockets.connect(f"{site.server.ws}/api/v1/pv-socket", max_queue=None)  # closes at once
    await conn.send(json.dumps({"action": "subscribe", "pvs": pvs, "id": 1}))
    await read_until(conn, lambda m: m.get("id") == 1)
    await read_until(conn, lambda m: m.get("pv") == pvs[0] and "value" in m and m.get("connected"))
    return conn


def mine(status: dict[str, Any], protocol: str, target: str) -> dict[str, Any]:
    found = [s for s in status["sockets"] if s["protocol"] == protocol and target in s["targets"]]
    assert len(found) == 1, status["sockets"]
    return found[0]


async def test_embedded_status_lists_sockets_pvs_and_the_bridge(site):
    pv_conn = await subscribed_pv_socket(site, [f"{P}sine", f"{P}m2:sp"])
    dev_conn = await websockets.connect(f"{site.server.ws}/api/v1/device-socket", max_queue=None)
    cam_conn = await websockets.connect(f"{site.server.ws}/api/v1/camera-socket", max_size=None, max_queue=None)
    try:
        await cam_conn.send(json.dumps({"camera": "sim", "max_fps": 5}))
        while not isinstance(await asyncio.wait_for(cam_conn.recv(), 15), bytes):
            pass  # the settings message, then a JPEG
        await dev_conn.send(json.dumps({"action": "subscribe", "device": "m3", "id": 2}))
        await read_until(dev_conn, lambda m: m.get("id") == 2)
        await read_until(dev_conn, lambda m: m.get("device") == "m3" and "value" in m and m.get("connected"))
        first = await site.status()
        assert [p["role"] for p in first["processes"]] == ["server+bridge"] and first["missing"] == []
        process = first["processes"][0]["process"]
        pv_sock = mine(first, "pv", f"{P}sine")
        assert pv_sock["path"] == "pv-socket" and pv_sock["subscriptions"] == 2
        assert sorted(pv_sock["targets"]) == [f"{P}m2:sp", f"{P}sine"] and pv_sock["process"] == process
        assert pv_sock["user"] == "anonymous" and pv_sock["client"].startswith("127.0.0.1:")
        assert pv_sock["messages_sent"] > 0 and pv_sock["replaced"] >= 0 and pv_sock["since"] > 0
        dev_sock = mine(first, "device", "m3")
        assert dev_sock["path"] == "device-socket" and dev_sock["subscriptions"] == 1

        await read_until(pv_conn, lambda m: m.get("pv") == f"{P}sine" and "value" in m)  # sine keeps changing
        await asyncio.sleep(0.6)
        second = await site.status()
        assert mine(second, "pv", f"{P}sine")["messages_sent"] > pv_sock["messages_sent"]
        pvs = {p["name"]: p for p in second["pvs"]}
        assert pvs[f"{P}sine"]["clients"] == 1 and pvs[f"{P}sine"]["connected"]
        assert pvs[f"{P}sine"]["protocol"] == "ca" and pvs[f"{P}sine"]["processes"] == [process]
        assert pvs[f"{P}sine"]["updates_per_s"] is not None and pvs[f"{P}sine"]["updates_per_s"] > 0
        assert any(p["protocol"] == "device" and "m3" in name for name, p in pvs.items()), list(pvs)
        bridge = second["bridges"][0]
        assert bridge["process"] == process and bridge["states"]["connected"] >= 3
        leases = {lease["pv"]: lease for lease in bridge["leases"]}
        assert [h["process"] for h in leases[f"{P}sine"]["hubs"]] == [process]
        assert bridge["leases_total"] >= 3 and second["console"] is not None
        [camera] = [c for c in second["cameras"] if c["viewers"] >= 1]
        assert camera["process"] == process and camera["encoded"] >= 1 and camera["frames_in"] >= 1
        assert mine(second, "camera", camera["camera"])["path"] == "camera-socket"
    finally:
        await pv_conn.close()
        await dev_conn.close()
        await cam_conn.close()
    schema = json.loads(await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"{site.server.http}/api/v1/openapi.json", timeout=10).read()))
    assert "/api/v1/status" in schema["paths"] and "post" in schema["paths"]["/api/v1/status/close"]


async def test_only_staff_may_read_the_status_or_close(site):
    code, body = await asyncio.to_thread(site.call, "GET", "/api/v1/status")
    assert code == 401 and body["code"] == "unauthenticated"
    code, body = await asyncio.to_thread(site.call, "GET", "/api/v1/status", "plain")
    assert code == 403 and body["code"] == "forbidden"
    code, body = await site.close("x:1", "pv-socket-000000", key="plain")
    assert code == 403 and body["code"] == "forbidden"
    assert site.audit("pv-socket-000000") == []  # a refused caller closes nothing and writes nothing
    browser = await asyncio.to_thread(Browser, site, "plain")
    assert (await asyncio.to_thread(browser.get, "/admin/status/")).geturl().startswith(
        f"{site.server.http}/admin/login/")  # not staff: sent to the login


async def test_staff_closes_a_socket_from_rest_and_from_the_admin_page(site):
    first = await subscribed_pv_socket(site, [f"{P}sine"])
    second = await subscribed_pv_socket(site, [f"{P}m2:sp"])
    status = await site.status()
    process = status["processes"][0]["process"]
    one, two = mine(status, "pv", f"{P}sine"), mine(status, "pv", f"{P}m2:sp")

    code, body = await site.close(process, one["id"])
    assert code == 200 and body["closed"] and body["socket"]["client"] == one["client"], body
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await read_until(first, lambda m: False)
    assert closed.value.rcvd.code == 4000 and closed.value.rcvd.reason == "closed by staff"
    [row] = site.audit(one["id"])
    assert (row["username"], row["token"], row["path"], row["signal"], row["outcome"]) == (
        "boss", "ops", "rest", "close-socket", "done")
    assert row["client"] == "127.0.0.1" and one["client"] in row["value_before"]
    assert all(s["id"] != one["id"] for s in (await site.status())["sockets"])

    code, body = await site.close(process, one["id"])  # gone already: 404, and on record
    assert code == 404 and body["code"] == "unknown_socket"
    assert [r["outcome"] for r in site.audit(one["id"])] == ["done", "not_connected"]

    browser = await asyncio.to_thread(Browser, site, "boss")
    index = (await asyncio.to_thread(browser.get, "/admin/")).read().decode()
    assert 'href="/admin/status/"' in index
    page = (await asyncio.to_thread(browser.get, "/admin/status/")).read().decode()
    assert "Live status" in page and 'action="/admin/status/close/"' in page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    forged = await asyncio.to_thread(browser.post, "/admin/status/close/", {"process": process, "socket": two["id"]})
    assert forged == 403  # no CSRF token: Django refuses, nothing happens
    done = await asyncio.to_thread(browser.post, "/admin/status/close/",
                                   {"process": process, "socket": two["id"], "csrfmiddlewaretoken": token})
    assert done == 200
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await read_until(second, lambda m: False)
    assert closed.value.rcvd.code == 4000
    [row] = site.audit(two["id"])
    assert (row["username"], row["token"], row["path"], row["outcome"]) == ("boss", "", "admin", "done")


class Browser:
    """A logged-in browser session (cookies, Django's login form)."""

    def __init__(self, site: Site, user: str) -> None:
        self.site = site
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        form = self.get("/admin/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        answer = self.post("/admin/login/?next=/admin/", {"username": user, "password": PASSWORD,
                                                          "csrfmiddlewaretoken": token})
        assert answer == 200

    def get(self, path: str) -> Any:
        return self.opener.open(self.site.server.http + path, timeout=15)

    def post(self, path: str, fields: dict[str, str]) -> int:
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.site.server.http + path, data=data,
                                         headers={"Referer": self.site.server.http + "/admin/"})
        try:
            with self.opener.open(request, timeout=15) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code


@pytest.fixture(scope="module")
def scaled(ioc, tmp_path_factory):
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1:6379 is required when CI is set")
        pytest.skip("no Redis on 127.0.0.1:6379")
    db = tmp_path_factory.mktemp("status-scaled") / "scaled.sqlite3"
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0", "OAS_REDIS_PREFIX": f"s{uuid.uuid4().hex[:8]}",
           "OAS_BRIDGE": "external", "DATABASE_URL": f"sqlite:///{db}", "OAS_LOAD_DEVICES_ON_START": "false"}
    bridge = ServerProcess(env, command="runbridge").start()  # migrates
    servers: list[ServerProcess] = []
    try:
        keys = accounts(env)
        servers = [ServerProcess(env).start(), ServerProcess(env).start()]
        yield [Site(s, db, keys) for s in servers], bridge
    finally:
        for proc in [*servers, bridge]:
            proc.stop()


async def test_scaled_status_is_merged_from_every_process(scaled):
    sites, _ = scaled
    conns = [await subscribed_pv_socket(sites[0], [f"{P}sine"]), await subscribed_pv_socket(sites[1], [f"{P}sine"])]
    try:
        views = [await sites[0].status(), await sites[1].status()]
        for view in views:
            roles = sorted(p["role"] for p in view["processes"])
            assert roles == ["bridge", "server", "server"] and view["missing"] == [], view["processes"]
            servers = {p["process"] for p in view["processes"] if p["role"] == "server"}
            sockets = [s for s in view["sockets"] if f"{P}sine" in s["targets"]]
            assert {s["process"] for s in sockets} == servers and len(sockets) == 2
            sine = next(p for p in view["pvs"] if p["name"] == f"{P}sine")
            assert sine["clients"] == 2 and sorted(sine["processes"]) == sorted(servers)
            [bridge] = view["bridges"]
            lease = next(lease for lease in bridge["leases"] if lease["pv"] == f"{P}sine")
            assert sorted(h["process"] for h in lease["hubs"]) == sorted(servers)
        # a socket of the second process, closed through the first
        target = next(s for s in views[0]["sockets"] if s["process"] != views[0]["asked_by"])
        code, body = await sites[0].close(target["process"], target["id"])
        assert code == 200 and body["closed"], body
        closed_conn = next(c for c in conns if f":{c.local_address[1]}" in target["client"])
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await read_until(closed_conn, lambda m: False)
        assert closed.value.rcvd.code == 4000
    finally:
        for conn in conns:
            await conn.close()


async def test_the_admin_page_draws_the_status_and_its_close_button_works(site, page):
    """The page's own script: it polls the JSON, draws the socket, and Close (confirmed)
    posts the form; the client sees 4000."""
    from tests.support.browser import log_in

    conn = await subscribed_pv_socket(site, [f"{P}counter"])
    try:
        await log_in(page, site.server.http, "boss", PASSWORD)
        await page.goto(site.server.http + "/admin/status/")
        row = page.locator("#sockets tr", has_text=f"{P}counter")
        await row.wait_for(timeout=10_000)
        assert "server+bridge" in await page.locator("#processes").inner_text()
        assert f"{P}counter" in await page.locator("#pvs").inner_text()
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await row.get_by_role("button", name="Close").click()
        await page.wait_for_url("**/admin/status/close/")
        assert "closed with code 4000" in await page.locator("#content").inner_text()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await read_until(conn, lambda m: False)
        assert closed.value.rcvd.code == 4000
    finally:
        await conn.close()
