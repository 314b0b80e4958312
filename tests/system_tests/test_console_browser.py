"""The operator console's PV page in headless Chromium against `serve --demo` with logins
required for writes: log in, watch values, set a setpoint and see the readback follow; a user
without the rule sees the refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.browser import log_in
from tests.support.server import PROJECT, ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

SETUP_USERS = """
from django.contrib.auth.models import Group, User
from devices.access.models import AccessRule
writers = Group.objects.create(name="operators")
rule = AccessRule.objects.create(name="operators-m1", pattern="DEMO:m1:*", level=2)
rule.groups.add(writers)
AccessRule.objects.create(name="operators-pva", pattern="pva://DEMO:pva:set*", level=2).groups.add(writers)
User.objects.create_user("operator", password="op-pass-123").groups.add(writers)
User.objects.create_user("visitor", password="vi-pass-123")
"""


async def test_log_in_watch_set_and_see_a_refusal(page, tmp_path, ca_repeater):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/console.sqlite3", "OAS_ANONYMOUS_WRITES": "false"}
    server = ServerProcess(env, log_path=tmp_path / "server.log")
    server.start_args = ["--demo"]
    server.start(timeout=60)
    try:
        subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP_USERS], cwd=PROJECT,
                       env={**os.environ, **env}, check=True, capture_output=True, timeout=60)
        await log_in(page, server.http, "operator", "op-pass-123")
        assert "operator" in await page.locator("header").text_content()
        await page.goto(server.http + "/console/pvs")
        sine = "tr[data-pv='DEMO:sine'] td.value"
        await page.wait_for_function(f"document.querySelector(\"{sine}\").textContent.endsWith(' V')", timeout=15000)
        first = await page.locator(sine).text_content()
        await page.wait_for_function(f"document.querySelector(\"{sine}\").textContent !== {first!r}", timeout=15000)

        setpoint = page.locator("tr[data-pv='DEMO:m1:sp']")
        await setpoint.locator("input[name=value]").fill("2.5")
        await setpoint.locator("button").click()
        await page.wait_for_function("document.getElementById('outcome').className === 'ok'", timeout=15000)
        await page.wait_for_function(
            "document.querySelector(\"tr[data-pv='DEMO:m1:rbv'] td.value\").textContent.startsWith('2.500')",
            timeout=15000)  # the readback follows the setpoint (5 mm/s)
        limits = await setpoint.locator("td.limits").text_content()
        assert "…" in limits

        pva = page.locator("tr[data-pv='pva://DEMO:pva:setpoint']")  # a PV Access PV, the same way
        await pva.locator("input[name=value]").fill("-3.5")
        await pva.locator("button").click()
        await page.wait_for_function(
            "document.querySelector(\"tr[data-pv='pva://DEMO:pva:setpoint'] td.value\").textContent"
            ".startsWith('-3.50')", timeout=15000)
        assert "-10" in await pva.locator("td.limits").text_content()

        await page.context.clear_cookies()
        await log_in(page, server.http, "visitor", "vi-pass-123")
        await page.goto(server.http + "/console/pvs")
        await page.wait_for_function(
            "document.querySelector(\"tr[data-pv='DEMO:m1:sp'] td.state\").textContent === 'yes'", timeout=15000)
        await setpoint.locator("input[name=value]").fill("7")
        await setpoint.locator("button").click()
        await page.wait_for_function("document.getElementById('outcome').className === 'refused'", timeout=15000)
        message = await page.locator("#outcome").text_content()
        assert "was not set" in message and "No write access to DEMO:m1:sp" in message, message
    finally:
        server.stop()


DONE = "document.querySelector(`section[data-device='motor1'] .done`).textContent === "


async def test_devices_page_moves_a_motor_and_shows_its_readback_and_done_state(page, tmp_path, ca_repeater):
    server = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/devices.sqlite3"}, log_path=tmp_path / "s.log")
    server.start_args = ["--demo"]  # on loopback the demo lets anonymous clients write
    server.start(timeout=60)
    try:
        await page.goto(server.http + "/console/devices")
        motor = page.locator("section[data-device='motor1']")
        readback = motor.locator("tr[data-signal='motor1_user_readback'] td.value")
        await readback.wait_for(timeout=20000)
        await page.wait_for_function(DONE + "'done'", timeout=20000)
        await motor.locator("input[name=value]").fill("3")
        await motor.locator("button[type=submit]").click()
        await page.wait_for_function(DONE + "'moving'", timeout=10000)
        await page.wait_for_function("document.getElementById('outcome').className === 'ok'", timeout=30000)
        await page.wait_for_function(  # the last readback (rate-capped at 10 Hz) follows the reply
            "document.querySelector(`section[data-device='motor1'] tr[data-signal='motor1_user_readback'] "
            "td.value`).textContent.startsWith('3.000')", timeout=5000)
        assert (await readback.text_content()).endswith("mm")
        await page.wait_for_function(DONE + "'done'", timeout=5000)
        assert await page.locator("section[data-device='slit']").count() == 1  # the whole registry
    finally:
        server.stop()


# Pixels of the overlay in each mark's colour (antialiased edges keep the colour, not the alpha).
MARKS = """(() => {
  const c = document.getElementById('overlay'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const colours = {cross: [255, 45, 85], ring: [0, 208, 255], profile: [255, 176, 0]};
  const n = {cross: 0, ring: 0, profile: 0};
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 100) continue;
    for (const [mark, [r, g, b]] of Object.entries(colours)) {
      if (Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < 30) n[mark]++;
    }
  }
  return n;
})()"""
DRAWN = f"(() => {{ const n = {MARKS}; return n.cross > 20 && n.ring > 20 && n.profile > 100; }})()"
BLANK = f"(() => {{ const n = {MARKS}; return n.cross + n.ring + n.profile === 0; }})()"
FRAMES = "Number(document.getElementById('frame').dataset.frames)"
BANNER = "getComputedStyle(document.getElementById('banner')).display"


async def more_frames(page, count: int = 5, timeout: int = 10000) -> None:
    now = await page.evaluate(FRAMES)
    await page.wait_for_function(f"{FRAMES} >= {now + count}", timeout=timeout)


async def test_camera_viewer_renders_frames_with_the_centre_of_mass(page, tmp_path, ca_repeater):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/cam.sqlite3"}
    server = ServerProcess(env, log_path=tmp_path / "s.log")
    server.start(timeout=60)
    try:
        await page.goto(server.http + "/console/camera")
        await page.wait_for_function(f"{FRAMES} > 5", timeout=20000)
        size = await page.evaluate("[document.getElementById('frame').naturalWidth, "
                                   "document.getElementById('frame').naturalHeight]")
        assert size == [640, 480]
        await page.wait_for_function(
            "document.getElementById('results').textContent.startsWith('Centre of mass (ring)')", timeout=20000)
        await page.wait_for_function("Number(document.getElementById('fps').textContent) >= 6", timeout=10000)
        await page.wait_for_function(DRAWN, timeout=10000)  # the fit's cross, the centroid's ring, the profiles
        assert "Mono UInt16" in await page.locator("#shape").text_content()

        await page.evaluate("window.heard = []; window.ophydsiteCamera.onMessage((m) => window.heard.push(m))")
        await page.check("#log")  # the log/linear toggle goes to the server for this viewer
        await page.wait_for_function("window.heard.some((m) => m.logNormalization === true)", timeout=10000)
        await page.uncheck("#log")
        await page.wait_for_function("window.heard.some((m) => m.logNormalization === false)", timeout=10000)

        await page.uncheck("#analyse")  # no processing: the marks go and stay away
        await page.wait_for_function("window.heard.some((m) => m.processing === 'off')", timeout=10000)
        await more_frames(page)
        assert await page.evaluate(BLANK)
        await page.check("#analyse")
        await page.wait_for_function(DRAWN, timeout=10000)

        server.stop()  # the banner while the server is away; the same viewer again when it is back
        await page.wait_for_function(f"{BANNER} === 'block'", timeout=15000)
        await page.evaluate("window.heard = []")
        server = ServerProcess(env, port=server.port, log_path=tmp_path / "s2.log")
        server.start(timeout=60)
        await page.wait_for_function(f"{BANNER} === 'none'", timeout=30000)
        await more_frames(page, timeout=20000)
        await page.wait_for_function(  # processing asked for again by itself
            "window.heard.some((m) => m.processing && typeof m.processing === 'object')", timeout=10000)
        await page.wait_for_function(DRAWN, timeout=10000)
    finally:
        server.stop()


async def test_queue_server_console_view_streams_lines_and_shows_the_source_state(page, tmp_path, ca_repeater):
    import json

    import zmq

    from tests.support.ioc import free_port

    port = free_port()
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.bind(f"tcp://127.0.0.1:{port}")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/qs.sqlite3", "ZMQ_HOST": "127.0.0.1", "ZMQ_PORT": str(port)}
    server = ServerProcess(env, log_path=tmp_path / "s.log")
    server.start(timeout=60)
    try:
        await page.goto(server.http + "/console/queue-server")
        await page.wait_for_function("document.body.dataset.console === 'connected'", timeout=20000)
        for i in range(200):  # until the relay's subscription is in place, then the real lines
            pub.send_multipart([b"QS_Console", json.dumps({"time": 1.0 + i, "msg": f"plan step {i}\n"}).encode()])
            await page.wait_for_timeout(50)
            if "plan step" in (await page.locator("#console").text_content()):
                break
        pub.send_multipart([b"QS_Console", json.dumps({"time": 500.0, "msg": "Plan 'count' completed\n"}).encode()])
        await page.wait_for_function("document.getElementById('console').textContent.includes('completed')",
                                     timeout=10000)
        pub.close(linger=0)  # the Queue Server goes away: the page says so
        await page.wait_for_function("document.body.dataset.console === 'disconnected'", timeout=20000)

        await page.evaluate("window.heard = []; window.ophydsiteConsole.onMessage((m) => window.heard.push(m))")
        last = await page.evaluate("window.ophydsiteConsole.lastSeq")
        assert isinstance(last, int), last
        server.stop()  # the banner while the server is away; then the entries after the last line it had
        await page.wait_for_function(f"{BANNER} === 'block'", timeout=15000)
        server = ServerProcess(env, port=server.port, log_path=tmp_path / "s2.log")
        server.start(timeout=60)
        await page.wait_for_function(f"{BANNER} === 'none'", timeout=30000)
        await page.wait_for_function(f"window.heard.some((m) => m.action === 'replay' && m.after === {last})",
                                     timeout=10000)
        assert "completed" in await page.locator("#console").text_content()  # the lines it had stay
    finally:
        server.stop()
        context.destroy(linger=0)  # term() would wait forever for a socket a failed test left open


async def test_a_pv_goes_disconnected_and_comes_back_when_the_ioc_restarts(page, tmp_path, restartable_ioc):
    server = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/rst.sqlite3"}, log_path=tmp_path / "s.log")
    server.start(timeout=60)
    row = "tr[data-pv='RST:counter']"
    try:
        await page.goto(server.http + "/console/pvs")
        await page.focus("#pvname")  # keyboard only: type the name ...
        await page.keyboard.type("RST:counter")
        await page.keyboard.press("Enter")  # ... and Enter watches it
        await page.wait_for_function(f"document.querySelector(\"{row} td.state\").textContent === 'yes'",
                                     timeout=15000)
        restartable_ioc.stop()
        await page.wait_for_function(f"document.querySelector(\"{row}\").classList.contains('disconnected')",
                                     timeout=20000)
        assert await page.locator(f"{row} td.state").text_content() == "no"
        colour = await page.evaluate(f"getComputedStyle(document.querySelector(\"{row} td.value\")).color")
        assert colour == "rgb(138, 148, 160)"  # greyed
        restartable_ioc.start()
        await page.wait_for_function(f"!document.querySelector(\"{row}\").classList.contains('disconnected')",
                                     timeout=30000)
        assert await page.locator(f"{row} td.state").text_content() == "yes"
    finally:
        server.stop()


@pytest.mark.parametrize("width", [1024, 1920])
async def test_pages_fit_laptop_and_control_room_widths(page, tmp_path, width, ca_repeater):
    server = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/w.sqlite3"}, log_path=tmp_path / "s.log")
    server.start_args = ["--demo"]
    server.start(timeout=60)
    try:
        await page.set_viewport_size({"width": width, "height": 900})
        for path in ("/console/pvs", "/console/devices", "/console/camera", "/console/queue-server"):
            await page.goto(server.http + path)
            await page.wait_for_timeout(300)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, (path, width, overflow)
    finally:
        server.stop()


async def test_a_lost_server_shows_the_banner_and_the_page_resubscribes(page, tmp_path, ca_repeater):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/lost.sqlite3"}
    server = ServerProcess(env, log_path=tmp_path / "s1.log")
    server.start_args = ["--demo"]
    server.start(timeout=60)
    sine = "document.querySelector(\"tr[data-pv='DEMO:sine'] td.value\")"
    try:
        await page.goto(server.http + "/console/pvs")
        await page.wait_for_function(f"{sine}.textContent.endsWith(' V')", timeout=15000)
        server.stop()
        await page.wait_for_function("getComputedStyle(document.getElementById('banner')).display === 'block'",
                                     timeout=15000)
        stale = await page.locator("tr[data-pv='DEMO:sine'] td.value").text_content()
        assert await page.locator("tr[data-pv='DEMO:sine']").get_attribute("class") == "disconnected"
        server = ServerProcess(env, port=server.port, log_path=tmp_path / "s2.log")
        server.start_args = ["--demo"]
        server.start(timeout=60)
        await page.wait_for_function("getComputedStyle(document.getElementById('banner')).display === 'none'",
                                     timeout=30000)
        await page.wait_for_function(f"{sine}.textContent !== {stale!r}", timeout=15000)  # live again, by itself
        assert await page.locator("tr[data-pv='DEMO:sine'] td.state").text_content() == "yes"
    finally:
        server.stop()


async def test_the_pv_page_with_two_thousand_rows_runs_on_batched_frames(page, tmp_path, ca_repeater):
    server = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/big.sqlite3"}, log_path=tmp_path / "s.log")
    server.start_args = ["--demo"]
    server.start(timeout=60)
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on(
        "framereceived", lambda payload: frames.append(payload if isinstance(payload, str) else "")))
    ghosts = [f"BIG:none{i}" for i in range(1994)]  # never connect: each row hears "connected: false"
    names = ["DEMO:counter", "DEMO:sine", *ghosts]
    counter = "document.querySelector(\"tr[data-pv='DEMO:counter'] td.value\")"
    try:
        # watches DEMO:m1:sp, DEMO:m1:rbv, DEMO:sine, pva://DEMO:pva:sine, pva://DEMO:pva:setpoint
        await page.goto(server.http + "/console/pvs")
        await page.click("details.watch-list summary")
        await page.fill("#pvnames", "\n".join(names))  # a pasted column of names
        await page.click("#add-many button")
        assert await page.locator("#rows tr").count() == 2000
        await page.wait_for_function(f"{counter}.textContent !== '…'", timeout=15000)
        first = await page.locator("tr[data-pv='DEMO:counter'] td.value").text_content()
        await page.wait_for_function(f"{counter}.textContent !== {first!r}", timeout=15000)
        await page.wait_for_function(  # every ghost row was told (with the bridge's connect timeout)
            "Array.from(document.querySelectorAll(\"#rows tr[data-pv^='BIG:']\"))"
            ".every((tr) => tr.cells[1].textContent === '—' && tr.cells[4].textContent === 'no')", timeout=60000)
        now = await page.locator("tr[data-pv='DEMO:counter'] td.value").text_content()
        await page.wait_for_function(f"{counter}.textContent !== {now!r}", timeout=15000)  # still live

        setpoint = page.locator("tr[data-pv='DEMO:m1:sp']")  # the set forms work in the big table
        await setpoint.locator("input[name=value]").fill("1.5")
        await setpoint.locator("button").click()
        await page.wait_for_function("document.getElementById('outcome').className === 'ok'", timeout=15000)

        assert any(f.startswith("{") and '"action":"options"' in f and '"batch_ms":50' in f for f in frames)
        batches = [json.loads(f) for f in frames if f.startswith("[")]
        assert batches and max(len(b) for b in batches) > 1  # many PVs' updates in one frame
        assert all(isinstance(m, dict) and "pv" in m and "id" not in m for b in batches for m in b)
        assert not [f for f in frames if f.startswith("{") and '"pv":' in f and '"action"' not in f]
    finally:
        server.stop()
