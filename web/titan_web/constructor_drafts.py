"""Drafts of the Constructor: named canvas models kept as JSON files in
``<console data dir>/drafts/NAME.json``.

A name is a plain file name (letters, digits, spaces, ``_ . -``; no path), checked before any
file is touched. A save writes a temporary file, fsyncs it, renames it into place and fsyncs
the folder, so a crash leaves the old draft or the new one, never half of one. At most
``limit`` drafts are kept (a new name beyond that is refused; saving over one is not).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from titan_actors.errors import UsageError

from .constructor_model import normalize

__all__ = ["DraftInfo", "Drafts", "UnknownDraftError", "check_draft_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,79}")
_SUFFIX = ".json"


class UnknownDraftError(UsageError):
    """No draft of that name."""


@dataclass(frozen=True)
class DraftInfo:
    name: str
    saved_at: float
    jobs: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "saved_at": self.saved_at, "jobs": self.jobs}


def check_draft_name(name: str) -> str:
    """Return ``name`` when it can name a draft, else raise UsageError saying what can."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith((" ", ".")):
        raise UsageError(f"draft name {name!r} is not a plain name: use 1 to 80 letters, "
                         "digits, spaces, '_', '.' or '-', starting with a letter or digit")
    return name


class Drafts:
    """The drafts in ``folder`` (created on the first save)."""

    def __init__(self, folder: Path, limit: int = 500) -> None:
        self.folder = folder
        self.limit = limit

    def list(self) -> list[DraftInfo]:
        """Every draft, the latest saved first; a file that does not read is left out."""
        found = []
        for path in self._files():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                found.append(DraftInfo(path.name[: -len(_SUFFIX)], path.stat().st_mtime,
                                       len(data.get("model", {}).get("nodes", []))))
            except (OSError, ValueError, AttributeError):
                continue
        return sorted(found, key=lambda d: (-d.saved_at, d.name))

    def load(self, name: str) -> dict[str, Any]:
        """The model saved as ``name`` (normalized). Raises UnknownDraftError, or UsageError
        for a bad name or a file that is not a draft."""
        path = self._path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UnknownDraftError(f"there is no draft {name!r}") from None
        except (OSError, ValueError) as error:
            raise UsageError(f"draft {name!r} cannot be read: {error}") from error
        if not isinstance(data, dict):
            raise UsageError(f"draft {name!r} is not a saved canvas")
        return normalize(data.get("model")).as_json()

    def save(self, name: str, model: Any) -> DraftInfo:
        """Save ``model`` (normalized first) as ``name``, replacing a draft of that name."""
        path = self._path(name)
        clean = normalize(model).as_json()
        if not path.exists() and sum(1 for _ in self._files()) >= self.limit:
            raise UsageError(f"there are {self.limit} drafts already; delete some first")
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps({"name": name, "saved_at": time.time(), "model": clean},
                          ensure_ascii=False, indent=1).encode()
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".draft-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _fsync_folder(self.folder)
        return DraftInfo(name, path.stat().st_mtime, len(clean["nodes"]))

    def delete(self, name: str) -> None:
        """Delete the draft ``name``. Raises UnknownDraftError when there is none."""
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise UnknownDraftError(f"there is no draft {name!r}") from None
        _fsync_folder(self.folder)

    def _path(self, name: str) -> Path:
        return self.folder / (check_draft_name(name) + _SUFFIX)

    def _files(self):
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.name.endswith(_SUFFIX) and not path.name.startswith(".") \
                    and path.is_file():
                yield path


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
