"""What makes a video: the seam between the server (store, routes, dialects) and whatever makes the clip.

The store keeps each job's record and directory; an :class:`Engine` makes the job's files in that directory and
says where the job stands. The routes and dialects read only the store's :class:`~sora_nb.server.records.VideoState`,
so they do not change when an engine is added.

Today there is one engine, ``synthetic``: deterministic, visibly synthetic "local preview" clips rendered on
this machine on a simulated schedule. A relay to an upstream service and real open-weights models come later
behind the same protocol: a relay's ``start`` submits upstream (or, after a restart, resumes following the job
it recorded), its ``state`` reports the upstream's status and progress, and it fetches the files once before
calling ``done``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sora_nb.server.records import JobRecord, Status

FilesDone = Callable[[str, "str | None"], None]
"""How an engine reports that a job's files are made: ``done(job_id, None)`` once they are all in place, or
``done(job_id, message)`` when they cannot be made (the message says why and what to do)."""


@dataclass(frozen=True)
class EngineState:
    """Where a job stands at one instant, as its engine sees it (the store adds expiry)."""

    status: Status
    progress: int
    """0 to 100."""
    remaining: float
    """Seconds until the job is expected to finish (a poll hint), 0 once it has."""
    completed_at: float | None = None
    """When it completed or failed."""
    error: Mapping[str, str] | None = None
    """``{"code", "message"}`` of a failed job."""


class Engine(Protocol):
    """What the store asks of an engine. Calls come from any thread; an engine does its work off the caller's."""

    def admit(self, job: JobRecord) -> None:
        """Fill in the engine's part of a new job's record (e.g. its schedule) before the store first saves it."""

    def start(self, job: JobRecord, directory: Path, done: FilesDone) -> None:
        """Begin making the files of ``job`` (the names in ``ASSETS``) in ``directory``, each renamed into place
        when whole, and call ``done`` when finished. Called for each new job and, after a restart, for each job
        whose files were never finished (``job.render_done_at`` None)."""

    def state(self, job: JobRecord, now: float) -> EngineState:
        """Where ``job`` stands at ``now``, for any job of the store (one an earlier process started too); never
        ``completed`` before its files are done (``job.render_done_at``)."""

    def cancel(self, job_id: str) -> None:
        """Stop work on a job that is being deleted; its ``done`` is not called after this."""

    def release(self, directory: Path) -> None:
        """The files in ``directory`` are about to be deleted (the job was deleted or expired): use them no more."""

    def close(self) -> None:
        """Stop all work; unfinished jobs are started again when a server opens the same data directory."""
