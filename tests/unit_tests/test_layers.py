"""The import layers in .importlinter hold (run by lint-imports), and the check would notice a
break: the same contracts run on a copy of the code with one wrong import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ophydsite", "devices", "camera", "qsconsole")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    return subprocess.run([tool, "--no-cache", "--config", str(cwd / ".importlinter")], cwd=cwd,
                          capture_output=True, text=True, env={"PYTHONPATH": str(cwd), "PATH": ""})


def test_the_code_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def code_copy(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


@pytest.mark.parametrize(("module", "line", "contract"), [
    # the bridge reaching up into the hub
    ("devices/bridge/entry.py", "from devices.core.hub import Hub", "Layers"),
    # the vocabulary importing the bridge, indirectly reaching everything
    ("devices/channel_layer/groups.py", "import devices.bridge.publisher", "Layers"),
    # the camera using a private module of the core instead of its exported names
    ("camera/feed.py", "from devices.core.mailbox import Mailbox", "exported names"),
])
def test_a_wrong_import_breaks_a_contract(code_copy: Path, module: str, line: str, contract: str):
    path = code_copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(code_copy)
    assert result.returncode != 0
    broken = [text for text in result.stdout.splitlines() if " BROKEN" in text]
    assert len(broken) == 1 and contract in broken[0], result.stdout
