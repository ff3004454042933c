"""Every exception aiotts raises, grouped by what the caller does next.

::

    AiottsError                      the one root: ``except AiottsError`` catches all of ours
    ├── UsageError (ValueError)      fix the call: bad argument, unsafe URL, closed client
    │   └── ClientClosedError        the client was closed; make a new one
    ├── AuthenticationError          fix the credentials: refused, or 401 despite a fresh token
    │   └── CredentialsError         the token endpoint refused the client id and secret
    │       └── TokenRateLimitedError  too many failed token requests; wait ``retry_after`` s
    ├── ApiError                     the server refused the request (4xx): fix the input
    │   └── TrialLimitError          trial mode's text-length or daily-call limit
    ├── TransientError               worth retrying later: the network or the server failed
    │   ├── ConnectError             could not reach the server (the request never left)
    │   ├── ServerError              5xx / 429 / cut bodies until the retry budget ran out
    │   └── RequestTimeout (TimeoutError)
    ├── SubmitUncertainError         a submit may or may not have reached the server; has ``text``
    ├── ResponseError                an answer aiotts cannot use, a redirect included
    │   └── DecodeError (ValueError) invalid JSON, Base64 or WAV in a body; has ``offset``
    ├── TaskError                    about one task; has ``task_id``
    │   ├── TaskFailedError          the server said ``Error``; has ``messages``
    │   ├── TaskNotFoundError        ``NotExist``: unknown, cancelled or expired id
    │   ├── TaskNotReadyError        asked to save a task that is not ``Completed`` yet
    │   ├── UnexpectedStatusError    a ``taskStatus`` aiotts does not know; has ``raw``
    │   └── TaskTimeoutError (TimeoutError)  the task's deadline passed
    └── OutputError (OSError)        a file could not be written: permissions, full disk

Invariant: no message, ``repr`` or attribute of any of these holds a client secret or a
token. Messages are built from ids, statuses, paths and server texts only, and every
server text goes through ``_redact.server_text`` (secrets and tokens scrubbed, control
characters escaped, length capped) first. A foreign exception is chained as the cause
(``raise ... from exc``) unless its own text holds a secret.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AiottsError",
    "ApiError",
    "AuthenticationError",
    "ClientClosedError",
    "ConnectError",
    "CredentialsError",
    "DecodeError",
    "OutputError",
    "RequestTimeout",
    "ResponseError",
    "ServerError",
    "SubmitUncertainError",
    "TaskError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskNotReadyError",
    "TaskTimeoutError",
    "TokenRateLimitedError",
    "TransientError",
    "TrialLimitError",
    "UnexpectedStatusError",
    "UsageError",
]


class AiottsError(Exception):
    """Root of every error aiotts raises."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UsageError(AiottsError, ValueError):
    """The call itself is wrong: fix the argument named in the message."""


class ClientClosedError(UsageError):
    """The client is closed (or was never opened); a client is used once."""


class AuthenticationError(AiottsError):
    """The credentials were refused, or a fresh token was refused too."""


class CredentialsError(AuthenticationError):
    """The token endpoint refused the client id and secret: nothing can succeed until the
    credentials are fixed, so a batch stops rather than failing every task one by one."""


class TokenRateLimitedError(CredentialsError):
    """The token endpoint answered 429: too many failed attempts for these credentials."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class ApiError(AiottsError):
    """The server refused the request with a 4xx: the input needs fixing.

    ``retry_after`` is the ``Retry-After`` of a 429 in seconds, when the server sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        messages: Sequence[str] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.messages = tuple(messages)
        self.retry_after = retry_after


class TrialLimitError(ApiError):
    """Trial mode's limits: at most 500 characters, at most 10 calls a day per address."""


class TransientError(AiottsError):
    """The network or the server failed; the same call may succeed later."""


class ConnectError(TransientError):
    """The server could not be reached; the request never left this machine."""


class ServerError(TransientError):
    """5xx, 429 or cut bodies persisted until the retry budget ran out.

    ``retry_after`` is the server's last ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class TokenUnavailableError(ServerError):
    """The token endpoint kept failing through the request's retries (5xx, timeouts, an
    answer that holds no token): nothing that needs a token can be sent until it recovers,
    so a batch stops rather than failing every task in turn. ``__cause__`` is the last
    failure; a ``ServerError`` like any failure of the server that outlasted the retries."""


class RequestTimeout(TransientError, TimeoutError):
    """A connect or read timeout expired, or a call's deadline (``Timeouts.call``, or the
    call's ``timeout`` argument) passed; the message names the call and the deadline."""


class SubmitUncertainError(AiottsError):
    """A submit failed after it may have reached the server.

    Submits are billable, so aiotts does not retry them blindly. ``text`` is the text that
    was sent; check the account's tasks or resubmit it knowing it may be charged twice.
    """

    def __init__(self, message: str, *, text: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.text = text


class ResponseError(AiottsError):
    """The server answered something that is not the documented envelope, or a redirect
    (aiotts follows none: the message names the status and the target)."""

    def __init__(self, message: str, *, status: int | None = None, task_id: str | None = None):
        super().__init__(message, status=status)
        self.task_id = task_id


class DecodeError(ResponseError, ValueError):
    """A body is not valid JSON, Base64 or WAV; ``offset`` is the byte where it went wrong."""

    def __init__(self, message: str, *, offset: int, task_id: str | None = None) -> None:
        super().__init__(f"{message} (at byte {offset})", task_id=task_id)
        self.reason = message
        self.offset = offset


class TaskError(AiottsError):
    """Something about one task; ``task_id`` names it."""

    def __init__(self, message: str, *, task_id: str, messages: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.messages = tuple(messages)


class TaskFailedError(TaskError):
    """The server reported ``taskStatus: Error``; ``messages`` holds what it said."""


class TaskNotFoundError(TaskError):
    """``NotExist``: the id is unknown, was cancelled, or is older than the retention."""


class TaskNotReadyError(TaskError):
    """The task is still ``Pending`` or ``Processing``; wait for it first."""


class UnexpectedStatusError(TaskError):
    """The server sent a ``taskStatus`` outside the documented set; ``raw`` is that value."""

    def __init__(self, message: str, *, task_id: str, raw: object) -> None:
        super().__init__(message, task_id=task_id)
        self.raw = raw


class TaskTimeoutError(TaskError, TimeoutError):
    """The task did not end before its deadline."""


class OutputError(AiottsError, OSError):
    """A result could not be written; ``path`` is where, ``errno`` says why."""

    def __init__(
        self, message: str, *, path: str, errno: int | None = None, task_id: str | None = None
    ) -> None:
        AiottsError.__init__(self, message)
        self.path = path
        self.errno = errno
        self.task_id = task_id
