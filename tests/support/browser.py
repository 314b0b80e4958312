"""Headless Chromium for browser tests: Debian's package, driven by Playwright.

The Chromium comes from Debian (`apt-get install chromium`), installed here when missing and
when the machine allows it (root, apt). Playwright runs it with ``executable_path``; it
downloads no browser of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("OPHYDSITE_TEST_ARTIFACTS", "/tmp/ophydsite-test-artifacts"))


def chromium_path() -> Path | None:
    """Debian's Chromium, installing it if it is not there yet (None if that is impossible)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:  # the package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, timeout=600)
    return CHROMIUM if CHROMIUM.exists() else None


async def log_in(tab, base: str, name: str, password: str) -> None:
    """Log ``tab`` in through the login page of the server at ``base``."""
    await tab.goto(base + "/accounts/login/")
    await tab.fill("input[name=username]", name)
    await tab.fill("input[name=password]", password)
    await tab.click("button[type=submit], input[type=submit]")
    await tab.wait_for_load_state()
