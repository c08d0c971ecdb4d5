"""The native SDK's exceptions: one tree rooted at :class:`TitanSDKError`.

The core raises :mod:`titan_actors.errors` exceptions; :func:`translated` maps them onto this
tree (the core error is kept as ``__cause__``), so a caller of the native API catches only
these. Each also derives from the builtin that fits (``ConnectionError``, ``LookupError``,
``ValueError``, ``TimeoutError``), so generic handlers work too.

The COMPAT client (:class:`titan_sdk.TitanClient`) never raises these: it returns ``ERROR:``
strings, as the original did.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from titan_actors import errors as core

if TYPE_CHECKING:
    from .native import RunResult

__all__ = ["ConnectionFailed", "InvalidJob", "NotFound", "RequestRefused", "RunFailed",
           "SubmissionRefused", "TitanSDKError", "WaitTimeout", "translated"]


class TitanSDKError(Exception):
    """Base of every exception the native SDK raises."""


class ConnectionFailed(TitanSDKError, ConnectionError):
    """The master could not be reached, refused the handshake (a wrong key or token), or did
    not answer in time. The message names the address."""


class RequestRefused(TitanSDKError):
    """The master refused the request (bad input, a job acting outside its run, a state that
    does not allow it), or the SDK did before asking (a missing run id); the message says
    why."""


class SubmissionRefused(RequestRefused, ValueError):
    """A submission (a pipeline, or jobs added to a run) was refused; nothing of it was kept.
    ``problems`` lists every problem, each naming the job and field at fault."""

    def __init__(self, message: str, problems: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class InvalidJob(SubmissionRefused):
    """A :class:`~titan_sdk.native.Job` or :class:`~titan_sdk.native.Pipeline` is invalid
    before anything was sent (a missing file, two things to run, a bad number)."""


class NotFound(RequestRefused, LookupError):
    """No run or job has this id (it never existed, or it was pruned); ``ref`` is the id."""

    def __init__(self, message: str, ref: str = "") -> None:
        super().__init__(message)
        self.ref = ref


class RunFailed(TitanSDKError):
    """A run ended without every job completing.

    ``failed_job_ids``: the jobs that are dead, skipped, rejected, timed out or cancelled, in
    submission order; ``result``: the run's final :class:`~titan_sdk.native.RunResult`.
    """

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.run_id = result.run_id
        self.failed_job_ids = result.failed_job_ids
        shown = ", ".join(f"{j} ({result.states[j].value})" for j in self.failed_job_ids[:10])
        more = len(self.failed_job_ids) - 10
        super().__init__(f"run {result.run_id} ({result.name}) {result.state.value}: "
                         f"{shown}{f' and {more} more' if more > 0 else ''}")


class WaitTimeout(TitanSDKError, TimeoutError):
    """A wait gave up after ``timeout`` seconds; what it waited for (``ref``: a run or a job)
    goes on."""

    def __init__(self, message: str, ref: str = "", timeout: float = 0.0) -> None:
        super().__init__(message)
        self.ref = ref
        self.timeout = timeout


def problems_of(error: core.SubmissionError) -> tuple[str, ...]:
    """The problems of a refused submission. One re-raised from the master's reply carries
    only its message, whose lines after the first are the problems (see
    ``titan_actors.scheduler.dag``)."""
    if error.problems:
        return error.problems
    lines = str(error).splitlines()[1:]
    return tuple(line.strip() for line in lines if line.startswith("  "))


@contextmanager
def translated(where: str, ref: str = "") -> Iterator[None]:
    """Re-raise the core errors of the block as SDK errors.

    ``where``: the master's address, named by connection failures; ``ref``: the id the block
    is about, kept by NotFound.
    """
    try:
        yield
    except TitanSDKError:
        raise
    except (core.LocalFileError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError) as error:
        raise RequestRefused(str(error)) from error  # a local file (a project's), not the link
    except (core.ConnectionError_, core.HandshakeError, core.ProtocolError,
            core.AskTimeoutError, OSError) as error:
        text = str(error)
        raise ConnectionFailed(text if where in text else f"{where}: {text}") from error
    except (core.UnknownRunError, core.UnknownJobError) as error:
        raise NotFound(str(error), ref) from error
    except core.SubmissionError as error:
        raise SubmissionRefused(str(error), problems_of(error)) from error
    except (core.UsageError, core.AuthError) as error:
        raise RequestRefused(str(error)) from error
    except core.TitanError as error:
        raise TitanSDKError(f"{type(error).__name__}: {error}") from error
