"""Saving startup files (validated, versioned) and gathering every file to load."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from devices.models import StartupFile, StartupFileVersion

from .sources import StartupSource, sources_from_path

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,195}\.py$")


def startup_file_check(*, name: str, content: str, max_bytes: int) -> None:
    """Raise ValidationError (field -> message) unless the file may be saved."""
    errors: dict[str, str] = {}
    if not _NAME.match(name):
        errors["name"] = "Use a file name like 10_motors.py: letters, digits, _ . - and ending in .py"
    size = len(content.encode("utf-8"))
    if size > max_bytes:
        errors["content"] = f"The file has {size} bytes; at most {max_bytes} (OAS_STARTUP_MAX_BYTES)"
    else:
        try:
            compile(content, name or "<startup file>", "exec")
        except SyntaxError as exc:
            errors["content"] = f"Syntax error at line {exc.lineno}, column {exc.offset}: {exc.msg}"
        except ValueError as exc:  # e.g. NUL bytes
            errors["content"] = f"Not valid Python source: {exc}"
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def startup_file_save(*, file: StartupFile, user: AbstractBaseUser | None, max_bytes: int) -> StartupFile:
    """Validate and save ``file``, keeping its text as a new version."""
    startup_file_check(name=file.name, content=file.content, max_bytes=max_bytes)
    file.changed_by = user if user is not None and user.is_authenticated else None
    file.save()
    last = StartupFileVersion.objects.filter(file_name=file.name).aggregate(n=Max("version"))["n"] or 0
    StartupFileVersion.objects.create(file=file, file_name=file.name, version=last + 1, content=file.content,
                                      changed_by=file.changed_by)
    return file


def startup_sources(*, startup_dir: str | None) -> list[StartupSource]:
    """Files to load: the startup folder's in name order, then the database's in (order, name).

    On a name clash the database file wins and takes the folder file's place, so an operator
    can override a file from disk in the admin without touching the disk.
    """
    from_dir = sources_from_path(startup_dir)
    from_db = [StartupSource(name=f.name, code=f.content, origin=f"db:{f.name}", kind="database")
               for f in StartupFile.objects.filter(enabled=True)]
    db_by_name = {s.name: s for s in from_db}
    merged = [db_by_name.pop(s.name, s) for s in from_dir]
    return merged + [s for s in from_db if s.name in db_by_name]
