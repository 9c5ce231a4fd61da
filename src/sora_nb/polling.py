"""When to ask again: server hints first, then a backoff that aims at the finish predicted from progress."""

from __future__ import annotations

import time

MIN_DELAY = 0.2
FIRST_DELAY = 1.0
MAX_DELAY = 10.0
MAX_HINT = 60.0


class ProgressTrend:
    """Progress samples over time, and the ETA they predict."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, int]] = []

    def add(self, progress: int | None, now: float | None = None) -> None:
        """Record a progress reading (None is ignored; progress that went backwards starts the trend anew)."""
        if progress is None:
            return
        now = time.monotonic() if now is None else now
        if self._samples and progress < self._samples[-1][1]:
            self._samples.clear()
        self._samples.append((now, progress))
        del self._samples[:-8]

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until 100 % at the recent rate, or None without a rising trend."""
        if len(self._samples) < 2:
            return None
        (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
        if p1 <= p0 or t1 <= t0:
            return None
        rate = (p1 - p0) / (t1 - t0)
        now = time.monotonic() if now is None else now
        return max(0.0, (100 - p1) / rate - (now - t1))


def next_delay(*, hint: float | None, eta: float | None, elapsed: float) -> float:
    """Seconds to wait before the next status request.

    Without a hint the delay grows from ~1 s toward 10 s as the job runs long, but never sleeps past the
    predicted finish, so completion is noticed promptly. A server hint (``openai-poll-after-ms``,
    ``poll_after_seconds``, ``Retry-After``) is a floor: never ask sooner, and where the progress trend
    predicts a later finish, ask then (within the backoff) rather than at every hint.
    """
    backoff = min(MAX_DELAY, FIRST_DELAY + elapsed / 10)
    aimed = None if eta is None else min(backoff, eta + 0.05)
    if hint is not None:
        floor = min(MAX_HINT, max(0.05, hint))
        return floor if aimed is None else max(floor, aimed)
    return backoff if aimed is None else max(MIN_DELAY, aimed)
