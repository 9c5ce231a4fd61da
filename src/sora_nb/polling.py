"""When to ask again: server hints first, then a backoff that aims at the finish predicted from progress."""

from __future__ import annotations

import time

MIN_DELAY = 0.2
FIRST_DELAY = 1.0
MAX_DELAY = 10.0
MAX_HINT = 60.0
STRETCH = 1.5


class ProgressTrend:
    """Progress samples over time, and the ETA they predict."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, int]] = []

    def add(self, progress: int | None, now: float | None = None) -> None:
        """Record a progress reading.

        None is ignored; progress that went backwards starts the trend anew; while progress has not moved
        yet, only its latest reading is kept, since the rise began after it.
        """
        if progress is None:
            return
        now = time.monotonic() if now is None else now
        if self._samples and progress < self._samples[-1][1]:
            self._samples.clear()
        if self._samples and progress == self._samples[0][1]:
            self._samples.clear()
        self._samples.append((now, progress))
        del self._samples[:-8]

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until 100 % at the recent rate, or None without a rising trend.

        A reading of p % is taken as the least the job has done, so the prediction is the latest finish the
        readings allow: a poll aimed at it lands just after the finish rather than just before.
        """
        if len(self._samples) < 2:
            return None
        (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
        if p1 <= p0 or t1 <= t0:
            return None
        rate = (p1 - p0) / (t1 - t0)
        now = time.monotonic() if now is None else now
        return max(0.0, (100 - p1) / rate - (now - t1))

    def span(self) -> float:
        """Seconds between the first and the last reading the ETA is drawn from."""
        return self._samples[-1][0] - self._samples[0][0] if self._samples else 0.0


def next_delay(*, hint: float | None, eta: float | None, elapsed: float, span: float | None = None) -> float:
    """Seconds to wait before the next status request.

    Without a hint the delay grows from ~1 s toward 10 s as the job runs long, and a predicted finish is polled
    at rather than before: exactly at the ``eta`` when it is near, halfway first when it lies further ahead
    than the ``span`` of readings it was drawn from, and at the backoff when it is beyond 1.5x the backoff.
    A server hint (``openai-poll-after-ms``, ``poll_after_seconds``, ``Retry-After``) is a floor: never ask
    sooner; where the trend predicts a later finish, ask then rather than at every hint.
    """
    backoff = min(MAX_DELAY, FIRST_DELAY + elapsed / 10)
    aimed = None
    if eta is not None:
        target = eta / 2 if span is not None and eta > span else eta
        aimed = target if target <= STRETCH * backoff else backoff
    if hint is not None:
        floor = min(MAX_HINT, max(0.05, hint))
        return floor if aimed is None else max(floor, aimed)
    return backoff if aimed is None else max(MIN_DELAY, aimed)
