"""Finding startup files: one ``.py`` file, or a folder of them in name order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StartupSource:
    """The text of one startup file and where it came from (shown in errors and the admin)."""

    name: str
    code: str
    origin: str  # a path, or "db:<id>" for files stored in the database
    # folder | database | qserver (the Queue Server's startup code: IPython profile rules)
    kind: str = "folder"


def sources_from_path(path: str | Path | None, *, kind: str = "folder") -> list[StartupSource]:
    """The ``.py`` files at ``path`` (a file, or a folder's files sorted by name; no recursion)."""
    if path is None:
        return []
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix == ".py" and p.is_file())
    else:
        raise FileNotFoundError(f"startup path {root} does not exist")
    return [StartupSource(name=p.name, code=p.read_text(encoding="utf-8"), origin=str(p), kind=kind) for p in files]
