"""The Titan Actors Python SDK.

Two APIs over the same client core, both gevent-free:

- the Titan-compatible one (COMPAT.md, "Python SDK"): ``TitanClient`` and ``TitanJob``, whose
  methods return the original's strings and never raise on a refusal;
- the native one: ``Titan`` (a context manager), typed ``Job`` / ``Pipeline`` / ``Run`` /
  ``RunResult``, and exceptions rooted at ``TitanSDKError``.
"""

from .errors import (
    ConnectionFailed,
    InvalidJob,
    NotFound,
    RequestRefused,
    RunFailed,
    SubmissionRefused,
    TitanSDKError,
    WaitTimeout,
)
from .jobs import Job, Pipeline
from .native import Run, RunResult, Titan
from .titan_sdk import TITAN_HOST, TITAN_PORT, TitanClient, TitanJob

__all__ = [
    "TITAN_HOST",
    "TITAN_PORT",
    "ConnectionFailed",
    "InvalidJob",
    "Job",
    "NotFound",
    "Pipeline",
    "RequestRefused",
    "Run",
    "RunFailed",
    "RunResult",
    "SubmissionRefused",
    "Titan",
    "TitanClient",
    "TitanJob",
    "TitanSDKError",
    "WaitTimeout",
]
