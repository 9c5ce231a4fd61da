"""The synthetic engine's simulated schedule: a queue time and a run time scaled by the server's speed, and a
prompt on the moderation list failing partway through.

A job's state is a pure function of the clock, this schedule and whether its render has finished, so a
restarted server answers the same way.
"""

from __future__ import annotations

import re

from sora_nb.server.engines import EngineState
from sora_nb.server.records import JobRecord, Status

QUEUE_SECONDS = 0.5
RUN_SECONDS_PER_CLIP_SECOND = 0.75
EDIT_RUN_FACTOR = 0.66
MODERATION_FAILS_AT = 0.3


class Moderation:
    """The blocked words of ``--blocked-words``, matched as whole words, ignoring case."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.blocked = [(word, re.compile(rf"\b{re.escape(word.lower())}\b")) for word in words if word.strip()]

    def first_blocked(self, *texts: str) -> str | None:
        """The first blocked word found in ``texts``, if any."""
        for text in texts:
            lowered = text.lower()
            for word, pattern in self.blocked:
                if pattern.search(lowered):
                    return word
        return None


def schedule(job: JobRecord, speed: float) -> None:
    """Set ``job``'s queue and run times: a clip second takes 0.75 s at speed 1 (an edit two thirds of that;
    an extension only its added seconds)."""
    clip = job.segment_seconds if job.segment_seconds is not None else job.seconds
    run = RUN_SECONDS_PER_CLIP_SECOND * clip * (EDIT_RUN_FACTOR if job.kind == "edit" else 1.0)
    job.queue_seconds = QUEUE_SECONDS / speed
    job.run_seconds = run / speed


def state_at(job: JobRecord, now: float) -> EngineState:
    """Where ``job`` stands at ``now`` on its schedule: completed once the run time is over and the render done."""
    start = job.created_at + job.queue_seconds
    finish = start + job.run_seconds
    status: Status
    completed_at = None
    error: dict[str, str] | None = None
    remaining = max(0.0, finish - now)
    if job.blocked_word is not None and now >= start + MODERATION_FAILS_AT * job.run_seconds:
        status, progress = "failed", int(100 * MODERATION_FAILS_AT)
        completed_at = start + MODERATION_FAILS_AT * job.run_seconds
        error = {
            "code": "moderation_blocked",
            "message": f"The prompt was blocked by the local server's moderation list (word: "
            f"{job.blocked_word!r}). Rephrase the prompt; the list is set with --blocked-words.",
        }
    elif job.render_error is not None:
        status, progress, completed_at = "failed", 0, job.render_done_at
        error = {"code": "render_failed", "message": job.render_error}
    elif now < start:
        status, progress = "queued", 0
    elif now < finish or job.render_done_at is None:
        status = "in_progress"
        fraction = (now - start) / job.run_seconds if job.run_seconds > 0 else 1.0
        progress = max(0, min(99, int(100 * fraction)))
        if job.render_done_at is None and remaining == 0.0:
            remaining = 0.25
    else:
        status, progress = "completed", 100
        completed_at = max(finish, job.render_done_at)
    return EngineState(status=status, progress=progress, remaining=remaining, completed_at=completed_at, error=error)
