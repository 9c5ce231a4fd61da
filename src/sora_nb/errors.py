"""The errors sora_nb raises: one hierarchy; each error's ``message`` says what happened and its ``hint`` what to
do next, from :data:`ADVICE`, the one table of advice (the widget shows both, once each; ``str()`` joins them).

Messages, codes and params often hold what a server said, and a hostile or broken server can say anything: the
key it was sent, newlines, megabytes. So every :class:`SoraError` cleans them itself, in one place: each live
client's key is replaced by ``***``, whitespace runs become one space, and the text is capped. No error can forget.
"""

from __future__ import annotations

import re
import weakref
from typing import Any, Protocol

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConnectError",
    "DeadlineExceededError",
    "DownloadError",
    "EngineBusyError",
    "GenerationFailedError",
    "InvalidRequestError",
    "JobCancelledError",
    "NotFoundError",
    "NotReadyError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "SoraError",
    "VideoExpiredError",
]

MAX_TEXT = 500  # characters of one server text quoted inside a message
MAX_MESSAGE = 900  # characters of a whole message (a hint is added after it)
MAX_CODE = 100  # characters of a code or param


class Redactor(Protocol):
    """Something that holds a secret and can hide it in a text (a client and its key)."""

    def redact(self, text: str) -> str: ...


# Weak: a key stays in its client's memory only, and is forgotten with it.
_redactors: weakref.WeakSet[Any] = weakref.WeakSet()


def add_redactor(redactor: Redactor) -> None:
    """Have every error constructed from now on pass its texts through ``redactor.redact`` while it lives."""
    _redactors.add(redactor)


def one_line(text: str, limit: int = MAX_TEXT) -> str:
    """A server's text on one line, at most ``limit`` characters (a hostile or broken server may send megabytes)."""
    text = " ".join(text.split())
    return text[:limit] + "..." if len(text) > limit else text


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` safe to show: every live client's key redacted (before the cut, so no half key survives it), on
    one line, at most ``limit`` characters."""
    for redactor in list(_redactors):
        text = redactor.redact(text)
    return one_line(text, limit)


def _clean_code(value: str | None) -> str | None:
    return None if value is None else clean(value, MAX_CODE)


class SoraError(Exception):
    """Base of every sora_nb error: ``message`` is what happened (a server's text, cleaned), ``hint`` what to do
    about it (from :data:`ADVICE`; ``""`` when there is none or the message already says it), ``str()`` both.
    ``status`` and ``code`` come from the server when it sent them."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.message = message = clean(message, MAX_MESSAGE)
        self.status = status
        self.code = _clean_code(code)
        self.hint = advice(self)
        joined = " " if message.endswith((".", "!", "?")) else ". "
        super().__init__(f"{message}{joined}{self.hint}" if self.hint and message else self.hint or message)

    def __reduce__(self) -> tuple[object, ...]:  # picklable across processes, keyword arguments included
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(cls: type[SoraError], message: str, state: dict[str, object]) -> SoraError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class AuthenticationError(SoraError):
    """The key was missing or refused (401/403)."""


class InvalidRequestError(SoraError):
    """The server refused the request's parameters (400/422); ``param`` names the field when known."""

    def __init__(
        self, message: str, *, param: str | None = None, status: int | None = None, code: str | None = None
    ) -> None:
        self.param = _clean_code(param)
        super().__init__(message, status=status, code=code)


class NotFoundError(SoraError):
    """No such video (or path) on the server."""


class NotReadyError(SoraError):
    """The video's content was asked for before the job completed."""


class VideoExpiredError(SoraError):
    """The server no longer has the video's files, and there is no cached copy."""


class RateLimitError(SoraError):
    """The server asked to slow down (429); ``retry_after`` is its hint in seconds."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = 429, code: str | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code)


class EngineBusyError(RateLimitError):
    """A create refused for capacity (429, or 503/409 "busy", "queue full", "try again later"): nothing was
    created. Jobs wait their turn for such an engine on their own; a direct client call may send it again."""


class GenerationFailedError(SoraError):
    """The job ran and failed on the server (``code`` such as ``moderation_blocked``)."""


class ServerError(SoraError):
    """The server failed (5xx) after the retries sora_nb makes."""


class ConnectError(SoraError):
    """The server could not be reached."""


class ResponseFormatError(SoraError):
    """The server answered with a shape sora_nb cannot read; the message names the field."""


class DownloadError(SoraError):
    """A file could not be downloaded whole and valid; nothing partial is kept as good."""


class BudgetExceededError(SoraError):
    """The job would cross the configured budget; nothing was sent."""


class DeadlineExceededError(SoraError):
    """The job did not finish before the polling deadline; it is still known and can be attached later."""


class JobCancelledError(SoraError):
    """The job was cancelled."""


# THE table of advice: what a person can do about an error, in a sentence; the first row that fits wins (a code,
# when given, must match too). "retry" is the widget's Retry button, and job.retry() in code. A hint whose
# opening words the message already holds is left out (a server may advise too: the local server's moderation
# message says "Rephrase the prompt"), so no advice is given twice.
ADVICE: tuple[tuple[type[SoraError], str | None, str], ...] = (
    (
        GenerationFailedError,
        "moderation_blocked",
        "Rephrase the prompt, then run it again: a retry sends the same words.",
    ),
    (AuthenticationError, None, "Check the API key: sora_nb.configure(api_key=...) or SORA_NB_API_KEY."),
    (NotReadyError, None, "Wait for the job to complete (job.result() waits for you)."),
    (
        VideoExpiredError,
        None,
        "Generate it again (or remix it); sora_nb downloads finished videos at once to avoid this.",
    ),
    (
        EngineBusyError,
        None,
        "Nothing was created: send it again once one of its jobs ends (sora_nb's jobs wait for their turn).",
    ),
    (RateLimitError, None, "The service is busy: wait a moment, then retry."),
    (ServerError, None, "The service may be down; try again later."),
    (ConnectError, None, "Check the base URL and your network (sora_nb.configure(base_url=...))."),
    (
        DeadlineExceededError,
        "not_created",
        "Nothing was created or charged: run it later, or allow longer with sora_nb.configure(deadline=...).",
    ),
    (DeadlineExceededError, None, "It is not lost: sora_nb.attach(video_id) picks it up later."),
    (NotFoundError, None, "Check the video ID; a retry of a generated job starts a new one."),
    (JobCancelledError, None, "A retry starts a new job."),
)
_OPENING = re.compile(r"[:;,]|\.(?:\s|$)")  # where a hint's opening words end


def advice(error: SoraError) -> str:
    """The hint of :data:`ADVICE` for ``error``, or ``""`` when no row fits or its message already says it."""
    for kind, code, hint in ADVICE:
        if isinstance(error, kind) and code in (None, error.code):
            opening = _OPENING.split(hint, maxsplit=1)[0].strip().casefold()
            return "" if opening in error.message.casefold() else hint
    return ""
