"""The start page in a real headless Chromium against `serve --demo`: live values change, a PV
typed in is added, the simulation camera's frames render, a lost server is shown and ridden
out; every socket is opened by the JavaScript client library and the stylesheet is served.
Screenshots of failures go to the artifacts folder (OPHYDSITE_TEST_ARTIFACTS, default
/tmp/ophydsite-test-artifacts)."""

from __future__ import annotations

import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

# Wraps the browser's WebSocket before any page script runs and notes, per socket, the URL and
# the script that called the constructor (the first stack frame outside this wrapper).
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.openedSockets = [];
  window.WebSocket = new Proxy(Native, {
    construct(target, args) {
      const frames = (new Error().stack || "").split("\\n").slice(1);
      const caller = frames.find((line) => /https?:\\/\\//.test(line)) || "";
      window.openedSockets.push({ url: String(args[0]), caller: caller });
      return Reflect.construct(target, args);
    },
  });
})();
"""
LIBRARY = "/static/ophydsite/ophydsite.js"


def cell(pv: str, column: str) -> str:
    return f"document.querySelector(\"tr[data-pv='{pv}'] td.{column}\")"


def start_demo(tmp_path, port: int | None = None, log: str = "s.log") -> ServerProcess:
    server = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/browser.sqlite3"}, port=port,
                           log_path=tmp_path / log)
    server.start_args = ["--demo"]
    server.start(timeout=60)
    return server


async def test_start_page_shows_live_values_and_the_camera_through_the_client_library(page, tmp_path, ca_repeater):
    await page.add_init_script(RECORD_SOCKETS)
    server = start_demo(tmp_path)
    try:
        await page.goto(server.http + "/")
        sine = cell("DEMO:sine", "value")
        await page.wait_for_function(f"{sine}.textContent !== '…'", timeout=15000)
        first = await page.locator("tr[data-pv='DEMO:sine'] td.value").text_content()
        await page.wait_for_function(f"{sine}.textContent !== {first!r}", timeout=15000)
        assert await page.locator("tr[data-pv='DEMO:sine'] td.units").text_content() == "V"
        assert await page.locator("tr[data-pv='DEMO:sine'] td.state").text_content() == "yes"
        await page.wait_for_function(f"['Off', 'On', 'Fault'].includes({cell('DEMO:mode', 'value')}.textContent)",
                                     timeout=15000)  # an enum shows its strings
        await page.wait_for_function(f"{cell('DEMO:m1:sp', 'value')}.textContent.includes('.')",
                                     timeout=15000)  # with the PV's precision

        await page.fill("#pvname", "DEMO:ro")  # a PV typed in is added and goes live
        await page.keyboard.press("Enter")
        await page.wait_for_function(f"{cell('DEMO:ro', 'value')}.textContent === '42'", timeout=15000)
        assert await page.locator("tr[data-pv='DEMO:ro'] td.state").text_content() == "yes"

        await page.wait_for_function("Number(document.getElementById('camera').dataset.frames) > 3", timeout=15000)
        size = await page.evaluate("[document.getElementById('camera').naturalWidth, "
                                   "document.getElementById('camera').naturalHeight]")
        assert size == [640, 480]  # a decoded JPEG, drawn
        assert (await page.locator("#camera-state").text_content()).startswith("640×480 Mono")

        opened = await page.evaluate("window.openedSockets")
        assert sorted(s["url"].split("/", 3)[3] for s in opened) == ["api/v1/camera-socket", "api/v1/pv-socket"]
        for socket in opened:  # the page itself constructs no WebSocket: the library does
            assert LIBRARY in socket["caller"], opened
        assert await page.evaluate("window.ophydsiteClient instanceof OphydSite.Client")
        assert await page.evaluate("window.ophydsiteCamera instanceof OphydSite.Camera")
    finally:
        server.stop()


async def test_the_stylesheet_is_served_and_applied(page, tmp_path, ca_repeater):
    server = start_demo(tmp_path)
    try:
        response = await page.request.get(server.http + "/static/ophydsite/ophydsite.css")
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/css")
        await page.goto(server.http + "/")
        links = await page.evaluate("Array.from(document.querySelectorAll('link[rel=stylesheet]'), (l) => l.href)")
        assert links == [server.http + "/static/ophydsite/ophydsite.css"]
        header = await page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
        assert header == "rgb(29, 39, 51)"
        banner = await page.evaluate("getComputedStyle(document.getElementById('banner')).display")
        assert banner == "none"
    finally:
        server.stop()


async def test_start_page_shows_a_lost_server_and_comes_back_by_itself(page, tmp_path, ca_repeater):
    server = start_demo(tmp_path, log="s1.log")
    sine = cell("DEMO:sine", "value")
    try:
        await page.goto(server.http + "/")
        await page.wait_for_function(f"{sine}.textContent !== '…'", timeout=15000)
        await page.wait_for_function("Number(document.getElementById('camera').dataset.frames) > 0", timeout=15000)
        server.stop()
        await page.wait_for_function("getComputedStyle(document.getElementById('banner')).display === 'block'",
                                     timeout=15000)
        await page.wait_for_function(
            "document.querySelector(\"tr[data-pv='DEMO:sine']\").classList.contains('disconnected')", timeout=5000)
        assert await page.locator("tr[data-pv='DEMO:sine'] td.state").text_content() == "no"
        assert "lost" in await page.locator("#camera-state").text_content()
        stale = await page.locator("tr[data-pv='DEMO:sine'] td.value").text_content()
        frames = int(await page.locator("#camera").get_attribute("data-frames"))
        server = start_demo(tmp_path, port=server.port, log="s2.log")
        await page.wait_for_function("getComputedStyle(document.getElementById('banner')).display === 'none'",
                                     timeout=30000)
        await page.wait_for_function(f"{sine}.textContent !== {stale!r}", timeout=15000)  # resubscribed
        assert await page.locator("tr[data-pv='DEMO:sine'] td.state").text_content() == "yes"
        await page.wait_for_function(f"Number(document.getElementById('camera').dataset.frames) > {frames}",
                                     timeout=15000)  # the camera asked for its picture again
    finally:
        server.stop()
