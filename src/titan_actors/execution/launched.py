"""One process started through the launcher, as the worker side sees it (``launcher_client``).

Its fields are filled by the :class:`~titan_actors.execution.launcher_client.Launcher`'s
reader greenlet as the launcher's frames arrive; ``exited`` is a gevent AsyncResult.
"""

from __future__ import annotations

from gevent.event import AsyncResult

__all__ = ["LaunchedProcess"]


class LaunchedProcess:
    """One started job process.

    ``pid`` is also its process group id (it runs in its own session). ``stdout_fd`` and
    ``stderr_fd`` are the non-blocking read ends of its output pipes (-1 when not captured); the
    caller owns and closes them. ``exited`` is set to the exit code (or -signal) when the
    launcher reaps it, or fails with LauncherBrokenError / LauncherClosedError when the launcher
    went away first. ``marker`` is the value of ``TITAN_ATTEMPT_MARKER`` in its environment;
    ``left_running`` / ``left_names``, set before ``exited``, say what its exit left running
    (and the launcher then terminated).
    """

    __slots__ = ("_started", "_abandoned", "_cleans", "exited", "key", "left_names",
                 "left_running", "marker", "pid", "stderr_fd", "stdout_fd")

    def __init__(self, key: str, stdout_fd: int, stderr_fd: int, marker: str = "",
                 cleans: bool = True) -> None:
        self.key = key
        self.pid = 0
        self.marker = marker
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.left_running = 0
        self.left_names: tuple[str, ...] = ()
        self.exited: AsyncResult = AsyncResult()
        self._started: AsyncResult = AsyncResult()
        self._abandoned = False
        self._cleans = cleans

    def wait(self, timeout: float | None) -> int | None:
        """Return the exit code, or None when the process is still running after ``timeout``
        seconds (None: no limit). Raises LauncherBrokenError or LauncherClosedError when the
        launcher went away before reporting the exit."""
        self.exited.wait(timeout)
        if not self.exited.ready():
            return None
        return self.exited.get(block=False)

    def leftover_note(self, wait: bool = False) -> bytes:
        """The line to add to the job's output when its exit left processes running, which the
        launcher then terminated; b"" when none were (or the exit is not known). ``wait``:
        first wait for the exit, however long it takes."""
        while wait and not self.exited.ready():
            self.exited.wait(60.0)
        count = self.left_running
        if not count:
            return b""
        names = ", ".join(self.left_names) + (", ..." if count > len(self.left_names) else "")
        noun = "process" if count == 1 else "processes"
        return f"\n[titan: killed {count} {noun} the job left running: {names}]\n".encode()

    def __repr__(self) -> str:
        return f"<LaunchedProcess {self.key!r} pid={self.pid}>"
