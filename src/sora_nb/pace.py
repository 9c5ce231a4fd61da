"""Honest progress: whether a job's percentages are real, and where its ETA comes from.

An engine's ``progress`` is a real percentage (the official API, Unsloth), or not: SGLang and vLLM-Omni say 0
and then 100, Aquiles climbs to 90 in a few seconds and then sits there for the whole render. The provider
profile says which (``Provider.progress``), and the readings can show it too (:meth:`ProgressTrend.stuck`).
Where there is no real percentage a job shows none (its bar is indeterminate) and its ETA is drawn from how
long the same backend took for similar past jobs: the cache records each finished job's ``duration``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sora_nb.cache import VideoCache
from sora_nb.polling import ProgressTrend
from sora_nb.video import Video

EtaSource = Literal["progress", "history"]
HISTORY_JOBS = 5  # the most recent similar jobs whose median duration is the estimate


@dataclass(frozen=True)
class PastJobs:
    """How long a backend took for jobs like this one: the median ``seconds`` of the ``jobs`` most recent."""

    seconds: float
    jobs: int


def likeness(request: Mapping[str, Any]) -> tuple[str | None, ...]:
    """What makes two requests take about as long: model, size, seconds and the number of steps (when set), and
    whether it makes a new video or changes one (a remix, edit or extension names its ``source``)."""
    extra = request.get("extra")
    extra = extra if isinstance(extra, Mapping) else {}
    steps = request.get("steps", extra.get("steps", extra.get("num_inference_steps")))
    derived = "derived" if request.get("source") is not None else None
    shown = (request.get("model"), request.get("size"), request.get("seconds"), steps, derived)
    return tuple(None if value is None else str(value) for value in shown)


def past_jobs(cache: VideoCache, endpoint: str, request: Mapping[str, Any]) -> PastJobs | None:
    """The durations of the most recent cached jobs on ``endpoint`` (a backend's identity) like ``request``."""
    wanted, durations = likeness(request), []
    for entry in cache.ls():  # newest first
        duration = entry.record["duration"]
        if duration is None or entry.record["endpoint"] != endpoint or likeness(entry.request) != wanted:
            continue
        durations.append(duration)
        if len(durations) == HISTORY_JOBS:
            break
    return PastJobs(statistics.median(durations), len(durations)) if durations else None


@dataclass(frozen=True)
class Reading:
    """What a status answer means for the job: its percentage (None: not a real one), ETA and its source."""

    progress: int | None
    eta: float | None
    source: EtaSource | None


class Pace:
    """A job's progress readings and how long it has run on the server, read honestly.

    Until :meth:`bind` is called the percentages count as real. ``past`` is filled in (from
    :meth:`take_lookup`, run off the event loop) the first time a reading holds no real percentage: none was
    given, the profile says it is not one, or the readings show it (stuck).
    """

    def __init__(self) -> None:
        self.trend = ProgressTrend()
        self.real = True
        self.known = False  # whether the latest reading was a real percentage
        self.past: PastJobs | None = None
        self._lookup: Callable[[], PastJobs | None] | None = None
        self._fresh = True
        self._born: float | None = None  # when the server job began (``time.monotonic()``)
        self._ended: float | None = None  # when it was first seen finished
        self._at_once = False

    def bind(self, progress: str, lookup: Callable[[], PastJobs | None], *, fresh: bool) -> None:
        """The profile's word on its percentages (``real``, ``jump``, ``fake``), how to find similar past jobs,
        and whether this job makes its own create (else it is attached to one already running)."""
        self.real, self._lookup, self._fresh = progress == "real", lookup, fresh

    def read(self, video: Video, moment: float | None = None) -> Reading:
        """Take in a status answer describing ``moment`` (``time.monotonic()``; now if None)."""
        now = time.monotonic() if moment is None else moment
        self.trend.add(None if video.status == "queued" else video.progress, now)  # queued 0 % is no rise
        if self._born is None:
            self._at_once = video.done  # a synchronous engine's create answer: no time seen passing
            age = time.time() - video.created_at if not self._fresh and video.created_at is not None else 0.0
            self._born = now - max(0.0, age)  # an attached job has run since its server says it was created
        if video.done and self._ended is None:
            self._ended = now
        self.known = self.real and video.progress is not None and not self.trend.stuck(now)
        if self.known:
            eta = self.trend.eta()
            return Reading(video.progress, eta, "progress" if eta is not None else None)
        eta = self.history_eta(now)
        return Reading(None, eta, "history" if eta is not None else None)

    def history_eta(self, now: float | None = None) -> float | None:
        """Seconds left at ``now`` (``time.monotonic()``) if this job takes as long as similar past ones; None
        without them, or once it has taken longer."""
        if self.past is None or self._born is None:
            return None
        now = time.monotonic() if now is None else now
        left = self.past.seconds - (now - self._born)
        return left if left > 0 else None

    def take_lookup(self) -> Callable[[], PastJobs | None] | None:
        """The search for similar past jobs, once, when it is wanted: a reading without a real percentage."""
        lookup, wanted = self._lookup, self._lookup is not None and self.past is None and not self.known
        if wanted:
            self._lookup = None
        return lookup if wanted else None

    def duration(self, video: Video) -> float | None:
        """Seconds the server took from the create to the finish: as this job saw it when it made the create,
        else by the server's own times (None without them)."""
        if self._fresh and self._born is not None and self._ended is not None and not self._at_once:
            return self._ended - self._born
        if video.created_at is not None and video.completed_at is not None:
            return float(max(0, video.completed_at - video.created_at))
        return None
