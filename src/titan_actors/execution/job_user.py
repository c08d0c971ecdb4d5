"""Who a worker's jobs run as (the ``job_user`` setting), resolved once when the worker starts.

``job_user`` is ``auto`` (the default), a user name or a numeric uid:

* ``auto``: a worker running as root (euid 0) runs its jobs as ``nobody``; any other worker runs
  them as its own user;
* a name or a uid: that user, with its primary group and no supplementary group. A uid with no
  entry in the user database gets the group of the same number and no home. ``root`` / ``0``
  runs jobs as root: unsafe (a job can then read the cluster key and the worker's state);
* a user other than the worker's own needs a worker running as root (only root may switch).

:func:`resolve` returns None when jobs run as the worker's own user (nothing to switch), else a
:class:`JobUser`. Gevent-free: the launcher imports it too.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from titan_actors.errors import ConfigError

__all__ = ["AUTO", "AUTO_USER", "JobUser", "closed_to", "parse_job_user", "resolve",
           "user_env"]

AUTO = "auto"
AUTO_USER = "nobody"      # what ``auto`` means for a worker running as root
_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,63}\$?$")  # what useradd and NSS accept
_MAX_ID = 2**32 - 2       # (uid_t)-1 means "unchanged" to setuid


@dataclass(frozen=True, slots=True)
class JobUser:
    """The user jobs run as: its name, uid, primary gid and home ("" when it has none usable:
    a job's HOME is then its working directory)."""

    name: str
    uid: int
    gid: int
    home: str = ""

    def describe(self) -> str:
        """``nobody (uid 65534, gid 65534)``."""
        return f"{self.name} (uid {self.uid}, gid {self.gid})"


def parse_job_user(text: str) -> str:
    """The ``job_user`` setting's parser: ``auto``, a user name or a uid (not looked up here:
    the worker does that on the host it runs on). Raises ConfigError for anything else."""
    value = text.strip()
    if value.isdigit():
        if int(value) > _MAX_ID:
            raise ConfigError(f"uid {value} is out of range; expected 0..{_MAX_ID}")
        return str(int(value))
    if not _NAME.match(value):
        raise ConfigError(f"{text!r} is not a user name or uid; expected auto (nobody when the "
                          "worker runs as root, else the worker's own user), a user name "
                          "(letters, digits, '.', '_', '-') or a numeric uid")
    return value


def resolve(setting: str, *, euid: int | None = None) -> JobUser | None:
    """The user the jobs of a worker whose effective uid is ``euid`` (default: this process's)
    run as, or None when it is that worker's own user.

    Raises ConfigError naming the setting when the user does not exist, or when it differs from
    the worker's own user and the worker does not run as root (only root may switch users).
    """
    euid = os.geteuid() if euid is None else euid
    value = parse_job_user(setting)
    if value == AUTO:
        if euid != 0:
            return None
        value = AUTO_USER
    user = _look_up(value)
    if user.uid == euid:
        return None
    if euid != 0:
        raise ConfigError(f"job_user {setting!r}: jobs can run as {user.describe()} only when "
                          f"the worker runs as root, and it runs as uid {euid}; start the "
                          "worker as root, or leave job_user at auto to run jobs as the "
                          "worker's own user")
    return user


def _look_up(value: str) -> JobUser:
    try:
        entry = pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
    except KeyError:
        if value.isdigit():  # a bare uid (containers): the group of the same number, no home
            return JobUser(value, int(value), int(value))
        raise ConfigError(f"job_user {value!r}: there is no such user on this host; create it "
                          f"(useradd --system {value}), name an existing user or uid, or use "
                          "auto (nobody when the worker runs as root)") from None
    return JobUser(entry.pw_name, entry.pw_uid, entry.pw_gid, _usable_home(entry.pw_dir))


def _usable_home(home: str) -> str:
    """``home`` when it is an existing directory (nobody's /nonexistent is not), else ""."""
    return home if home and os.path.isdir(home) else ""


def user_env(base: Mapping[str, str], user: JobUser | None) -> dict[str, str]:
    """``base`` (the variables every job gets) as the job user's: USER and LOGNAME its name,
    HOME its home (left out when it has none: the launcher then sets the job's working
    directory). ``user`` None: ``base`` unchanged."""
    env = dict(base)
    if user is None:
        return env
    env["USER"] = env["LOGNAME"] = user.name
    if user.home:
        env["HOME"] = user.home
    else:
        env.pop("HOME", None)
    return env


def closed_to(program: str, user: JobUser) -> str:
    """What keeps ``user`` (no supplementary groups) from executing ``program`` (links
    resolved): the first directory on the way it may not pass, or the program itself; "" when
    nothing does, as far as the mode bits tell (ACLs are not read)."""
    real = os.path.realpath(program)
    for path in [*reversed(_parents(real)), real]:
        try:
            info = os.stat(path)
        except OSError:
            return path
        shift = 6 if info.st_uid == user.uid else 3 if info.st_gid == user.gid else 0
        if not info.st_mode >> shift & stat.S_IXOTH:
            return path
    return ""


def _parents(path: str) -> list[str]:
    """The directories above ``path``, nearest first, ``/`` last."""
    found = []
    while (parent := os.path.dirname(path)) != path:
        found.append(parent)
        path = parent
    return found
