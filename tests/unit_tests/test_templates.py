"""The site's pages keep one JavaScript client and one stylesheet: sockets are opened by
static/ophydsite/ophydsite.js, styles live in static/ophydsite/ophydsite.css (linked from
base.html), and no page carries a copy of either."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
STYLESHEET = ROOT / "static" / "ophydsite" / "ophydsite.css"
LIBRARY_TAG = "<script src=\"{% static 'ophydsite/ophydsite.js' %}\"></script>"
STYLESHEET_TAG = "<link rel=\"stylesheet\" href=\"{% static 'ophydsite/ophydsite.css' %}\">"


def site_pages() -> dict[str, str]:
    """Every template of our own pages (the admin's overrides extend Django's admin instead)."""
    pages = {str(p.relative_to(TEMPLATES)): p.read_text() for p in sorted(TEMPLATES.rglob("*.html"))}
    return {name: text for name, text in pages.items() if not name.startswith("admin/")}


def test_every_site_page_extends_the_base_template_that_links_the_stylesheet():
    pages = site_pages()
    assert STYLESHEET.is_file()
    assert STYLESHEET_TAG in pages["base.html"]
    for name, text in pages.items():
        if name != "base.html":
            assert text.startswith('{% extends "base.html" %}'), name


@pytest.mark.parametrize("name", sorted(site_pages()))
def test_no_page_carries_styles_of_its_own(name):
    text = site_pages()[name]
    assert not re.search(r"<style\b", text, re.IGNORECASE), f"{name}: move its <style> rules to {STYLESHEET.name}"
    assert not re.search(r"\sstyle\s*=", text, re.IGNORECASE), f"{name}: a style= attribute; use a stylesheet class"


@pytest.mark.parametrize("name", sorted(site_pages()))
def test_sockets_are_opened_by_the_client_library(name):
    text = site_pages()[name]
    assert "new WebSocket" not in text, f"{name} opens a WebSocket itself; use OphydSite.Client, Camera or Console"
    if "OphydSite." in text:
        assert LIBRARY_TAG in text, f"{name} uses OphydSite without loading {LIBRARY_TAG}"


def test_the_start_page_runs_on_the_library():
    text = site_pages()["index.html"]
    assert LIBRARY_TAG in text
    assert "new OphydSite.Client(" in text and "new OphydSite.Camera(" in text


def test_the_camera_page_runs_on_the_library():
    text = site_pages()["console/camera.html"]
    assert LIBRARY_TAG in text
    assert "new OphydSite.Camera(" in text


def test_the_queue_server_console_page_runs_on_the_library():
    text = site_pages()["console/qs_console.html"]
    assert LIBRARY_TAG in text
    assert "new OphydSite.Console(" in text


def test_the_stylesheet_defines_each_selector_once():
    text = re.sub(r"/\*.*?\*/", "", STYLESHEET.read_text(), flags=re.DOTALL)
    assert "@media" not in text  # flat rules only, so this count holds; extend it when that changes
    selectors = [s.strip() for rule in re.findall(r"([^{}]+)\{[^}]*\}", text) for s in rule.split(",")]
    repeated = sorted({s for s in selectors if selectors.count(s) > 1})
    assert not repeated, f"selectors defined more than once: {repeated}"
