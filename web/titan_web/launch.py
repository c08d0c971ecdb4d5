"""Workers started from the console's "Launch worker" form.

The console runs ``titanctl worker --master HOST:PORT --name N [--tags T] [--slots S]
[--ephemeral]`` on its own host, in a session of its own, with its log in
``<web dir>/workers/<name>.log``, and records each one (pid, start time, name) in
``<web dir>/launched.json``.

Launched workers are cluster members like workers started by hand: they outlive the console
(restarting the console must not stop work), an ephemeral one retires itself when idle, and
``titanctl down`` stops those recorded in ``launched.json`` together with the cluster's own.
Argument values come from a form, so each is checked (names and tags: letters, digits, ``.``,
``_``, ``-``) and passed as one argv entry, never through a shell.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from titan_actors.config_parse import format_address
from titan_actors.errors import UsageError

LAUNCHED_FILE = "launched.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_SLOTS = 1024


@dataclass(frozen=True)
class Launched:
    name: str
    pid: int
    create_time: float
    tags: tuple[str, ...]
    slots: int
    ephemeral: bool
    log: str


def parse_tags(text: str) -> tuple[str, ...]:
    """Comma-separated tags, each checked. Raises UsageError naming the bad one."""
    tags = tuple(t.strip() for t in text.split(",") if t.strip())
    for tag in tags:
        if not _NAME.fullmatch(tag):
            raise UsageError(f"tag {tag!r} is not valid: use letters, digits, '.', '_', '-'")
    return tags


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"worker name {name!r} is not valid: start with a letter or digit, "
                         "then letters, digits, '.', '_', '-' (64 at most)")
    return name


class WorkerLauncher:
    """Starts worker processes and remembers them (see the module docstring)."""

    def __init__(self, web_dir: Path, master: tuple[str, int], key_file: Path | None,
                 data_root: Path) -> None:
        self.web_dir = Path(web_dir)
        self.master = master
        self.key_file = key_file
        self.data_root = Path(data_root)
        self._children: dict[int, subprocess.Popen] = {}

    def launch(self, name: str, tags: tuple[str, ...], slots: int | None,
               ephemeral: bool) -> Launched:
        """Start one worker; returns once its process exists (it registers on its own).

        Raises UsageError for a bad name or slot count, or a name already in use here."""
        check_name(name)
        if slots is not None and not 1 <= slots <= MAX_SLOTS:
            raise UsageError(f"slots must be between 1 and {MAX_SLOTS}")
        if any(entry.name == name for entry in self.running()):
            raise UsageError(f"a worker named {name!r} launched from this console still runs")
        self.reap()
        argv = [sys.executable, "-m", "titan_actors.cli", "worker",
                "--master", format_address(self.master),
                "--name", name, "--data-dir", str(self.data_root)]
        if tags:
            argv += ["--tags", ",".join(tags)]
        if slots:
            argv += ["--slots", str(slots)]
        if ephemeral:
            argv.append("--ephemeral")
        env = dict(os.environ)
        if self.key_file is not None:
            env["TITAN_KEY_FILE"] = str(self.key_file)
        logs = self.web_dir / "workers"
        logs.mkdir(mode=0o700, exist_ok=True)
        log_path = logs / f"{name}.log"
        with open(log_path, "ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       env=env)
        self._children[process.pid] = process
        try:
            create_time = psutil.Process(process.pid).create_time()
        except psutil.Error:
            create_time = 0.0
        entry = Launched(name, process.pid, create_time, tags, slots or 0, ephemeral,
                         str(log_path))
        self._save([*self._load(), entry])
        return entry

    def running(self) -> list[Launched]:
        """The recorded workers whose process still runs (the others are forgotten)."""
        self.reap()
        recorded = self._load()
        alive = [entry for entry in recorded if _alive(entry)]
        if len(alive) != len(recorded):
            self._save(alive)
        return alive

    def reap(self) -> None:
        """Collect the exit status of children that ended (no zombies)."""
        for pid, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[pid]

    def _file(self) -> Path:
        return self.web_dir / LAUNCHED_FILE

    def _load(self) -> list[Launched]:
        try:
            rows = json.loads(self._file().read_text())
            return [Launched(r["name"], int(r["pid"]), float(r["create_time"]),
                             tuple(r.get("tags", ())), int(r.get("slots", 0)),
                             bool(r.get("ephemeral")), str(r.get("log", "")))
                    for r in rows]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _save(self, entries: list[Launched]) -> None:
        rows = [{"name": e.name, "pid": e.pid, "create_time": e.create_time,
                 "tags": list(e.tags), "slots": e.slots, "ephemeral": e.ephemeral,
                 "log": e.log} for e in entries]
        temp = self._file().with_name(f".{LAUNCHED_FILE}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(rows, indent=2))
        os.replace(temp, self._file())


def _alive(entry: Launched) -> bool:
    try:
        process = psutil.Process(entry.pid)
        if entry.create_time and abs(process.create_time() - entry.create_time) > 0.05:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def recorded_workers(web_dir: Path) -> list[dict]:
    """The ``launched.json`` entries (for ``titanctl down``): {pid, create_time, name}."""
    try:
        rows = json.loads((Path(web_dir) / LAUNCHED_FILE).read_text())
        return [{"pid": int(r["pid"]), "create_time": float(r["create_time"]),
                 "name": str(r["name"])} for r in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return []
