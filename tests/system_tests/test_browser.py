"""The start page in a real headless Chromium against `serve --demo`: live values change,
the simulation camera's frames render. Screenshots of failures go to the artifacts folder
(OPHYDSITE_TEST_ARTIFACTS, default /tmp/ophydsite-test-artifacts)."""

from __future__ import annotations

import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


async def test_start_page_shows_live_values_and_the_camera(page, tmp_path, ca_repeater):
    server = ServerProcess({"DATABASE_URL": f"sqlite:///{tmp_path}/browser.sqlite3"}, log_path=tmp_path / "s.log")
    server.start_args = ["--demo"]
    server.start(timeout=60)
    try:
        await page.goto(server.http + "/")
        sine = page.locator("tr[data-pv='DEMO:sine'] td.value")
        await page.wait_for_function(
            "document.querySelector(\"tr[data-pv='DEMO:sine'] td.value\").textContent !== '…'", timeout=15000)
        first = await sine.text_content()
        await page.wait_for_function(
            f"document.querySelector(\"tr[data-pv='DEMO:sine'] td.value\").textContent !== {first!r}", timeout=15000)
        units = await page.locator("tr[data-pv='DEMO:sine'] td").nth(2).text_content()
        assert units == "V"
        await page.wait_for_function("Number(document.getElementById('camera').dataset.frames) > 3", timeout=15000)
        size = await page.evaluate("[document.getElementById('camera').naturalWidth, "
                                   "document.getElementById('camera').naturalHeight]")
        assert size == [640, 480]  # a decoded JPEG, drawn
    finally:
        server.stop()
