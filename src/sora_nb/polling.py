"""When to ask again: server hints first, then a backoff that aims at the finish predicted from progress; status
requests due together gathered into one list request; and the poll loop with its budgets for transient errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Protocol

from sora_nb import errors
from sora_nb.client import AsyncVideosClient
from sora_nb.errors import one_line
from sora_nb.video import SHOWN_STATUS, Video

log = logging.getLogger("sora_nb")

MIN_DELAY = 0.2
FIRST_DELAY = 1.0
MAX_DELAY = 10.0
MAX_HINT = 60.0
STRETCH = 1.5
BATCH_MIN = 3
TRANSIENT = (errors.ServerError, errors.ConnectError, errors.RateLimitError, errors.ResponseFormatError)
MAX_TRANSIENT_FAILURES = 8
MAX_ODD_ANSWERS = 2  # status answers that are not a video record: retried twice (about 6 s), then an error
STUCK_AFTER = 10.0  # seconds a percentage must sit unchanged (at least) before it counts as no percentage


class ProgressTrend:
    """Progress samples over time, the ETA they predict, and whether they are a percentage at all."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, int]] = []
        self._began = 0.0  # the first reading (since progress last went back)
        self._since = 0.0  # the first reading of the latest value
        self._value: int | None = None

    def add(self, progress: int | None, now: float | None = None) -> None:
        """Record a progress reading.

        None is ignored; progress that went backwards starts the trend anew; while progress has not moved
        yet, only its latest reading is kept, since the rise began after it.
        """
        if progress is None:
            return
        now = time.monotonic() if now is None else now
        if self._value is None or progress < self._value:
            self._began = now
        if progress != self._value:
            self._since, self._value = now, progress
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

    def stuck(self, now: float | None = None) -> bool:
        """Whether the readings show no real percentage: the latest value (below 100) has sat unchanged longer
        than it took to rise to it, and longer than STUCK_AFTER seconds.

        That covers a value faked up to some point and then held for the whole render (Aquiles: 90), and a
        0 that jumps straight to 100 (vLLM-Omni): 0 is reached at once, so it is stuck after STUCK_AFTER.
        """
        if self._value is None or self._value >= 100:
            return False
        now = time.monotonic() if now is None else now
        return now - self._since > max(STUCK_AFTER, self._since - self._began)


def next_delay(*, hint: float | None, eta: float | None, elapsed: float, span: float | None = None) -> float:
    """Seconds to wait before the next status request.

    Without a hint the delay grows from ~1 s toward 10 s as the job runs long, and a predicted finish is polled
    at rather than before: exactly at the ``eta`` when it is near, halfway first when it lies further ahead
    than the ``span`` of readings it was drawn from, and at the backoff when it is beyond 1.5x the backoff.
    An ETA not drawn from readings (``span`` None: past jobs' durations) is aimed at when it is near.
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


class BatchPoller:
    """Status requests of many jobs gathered into one list request when the endpoint supports list.

    Each request names when it is due. Requests whose due times lie within ``window`` of each other go together
    at the latest of those times: none is sent before it is due (a server's poll hint is a floor), and none more
    than ``window`` after.
    """

    def __init__(self, client: AsyncVideosClient, window: float = 0.05) -> None:
        self.client = client
        self.window = window
        self.list_works = True
        self._batches: list[_Batch] = []

    async def status(self, video_id: str, due: float | None = None) -> tuple[Video, float]:
        """The job's record, asked for no sooner than ``due`` (``time.monotonic()``; now if None), possibly with
        others', and the moment it describes (halfway through its request)."""
        loop = asyncio.get_running_loop()
        due = time.monotonic() if due is None else due
        future: asyncio.Future[tuple[Video, float]] = loop.create_future()
        batch = next((b for b in self._batches if max(b.last, due) - min(b.first, due) <= self.window), None)
        if batch is None:
            batch = _Batch(first=due, last=due)
            self._batches.append(batch)
        elif due > batch.last and batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        batch.first, batch.last = min(batch.first, due), max(batch.last, due)
        batch.waiting.setdefault(video_id, []).append(future)
        if batch.timer is None:
            delay = max(0.0, batch.last - time.monotonic())
            batch.timer = loop.call_later(delay, self._start_flush, batch)
        try:
            return await future
        except asyncio.CancelledError:  # a cancelled job's request is not sent for it
            self._forget(batch, video_id, future)
            raise

    def _forget(self, batch: _Batch, video_id: str, future: asyncio.Future[tuple[Video, float]]) -> None:
        futures = batch.waiting.get(video_id, [])
        if future in futures:
            futures.remove(future)
        if not futures:
            batch.waiting.pop(video_id, None)
        if not batch.waiting and batch in self._batches:
            self._batches.remove(batch)
            if batch.timer is not None:
                batch.timer.cancel()

    def _start_flush(self, batch: _Batch) -> None:
        self._batches.remove(batch)
        task = asyncio.ensure_future(self._resolve(batch.waiting))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _resolve(self, waiting: dict[str, list[asyncio.Future[tuple[Video, float]]]]) -> None:
        found: dict[str, tuple[Video, float]] = {}
        if len(waiting) >= BATCH_MIN and self.list_works:
            try:
                sent = time.monotonic()
                videos, _, _ = await self.client.list_page(limit=100)
                moment = (sent + time.monotonic()) / 2
                found = {v.id: (v, moment) for v in videos if v.id in waiting}
            except errors.SoraError as exc:
                log.info("sora_nb: list request failed (%s); polling jobs one by one", type(exc).__name__)
                self.list_works = False
        missing = [video_id for video_id in waiting if video_id not in found]
        results = await asyncio.gather(*(self._retrieve(i) for i in missing), return_exceptions=True)
        outcomes: dict[str, tuple[Video, float] | BaseException] = {
            **found,
            **dict(zip(missing, results, strict=True)),
        }
        for video_id, futures in waiting.items():
            for future in futures:
                if future.done():
                    continue
                outcome = outcomes[video_id]
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _retrieve(self, video_id: str) -> tuple[Video, float]:
        sent = time.monotonic()
        video = await self.client.retrieve(video_id)
        return video, (sent + time.monotonic()) / 2


@dataclasses.dataclass
class _Batch:
    """Status requests that go out together, and the earliest and latest time they are due."""

    first: float
    last: float
    waiting: dict[str, list[asyncio.Future[tuple[Video, float]]]] = dataclasses.field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class Polled(Protocol):
    """What the poll loop reads of a job, and tells it."""

    @property
    def video(self) -> Video | None:
        """The job's last record (None before the first)."""

    @property
    def eta(self) -> float | None:
        """Seconds until the job is predicted to finish."""

    @property
    def elapsed(self) -> float:
        """Seconds since the job started."""

    @property
    def eta_span(self) -> float | None:
        """Seconds of progress readings the ETA is drawn from; None when it is not drawn from readings."""

    def update_from(self, video: Video, moment: float | None = None) -> None:
        """Take in a status answer, which describes ``moment`` (``time.monotonic()``)."""


async def poll(poller: BatchPoller, video_id: str, job: Polled, *, deadline: float) -> Video:
    """Poll ``video_id`` until it ends, telling ``job`` each answer; its record at the end.

    Transient errors (5xx, 429, network, odd bodies) only delay it, up to MAX_TRANSIENT_FAILURES in a row (and
    MAX_ODD_ANSWERS odd bodies); after ``deadline`` seconds it gives up with DeadlineExceededError.
    """
    until = time.monotonic() + deadline
    failures = odd = 0
    due = None
    if job.video is not None:  # just created: its response carried the first hint
        due = time.monotonic() + next_delay(hint=job.video.poll_after, eta=None, elapsed=job.elapsed)
    while True:
        try:
            video, moment = await poller.status(video_id, due)
        except TRANSIENT as exc:
            failures += 1
            if isinstance(exc, errors.ResponseFormatError):  # a proxy's page passes; a wrong endpoint does not
                odd += 1
                if odd > MAX_ODD_ANSWERS:
                    raise errors.ResponseFormatError(
                        f"{exc.message.rstrip('.')} ({odd} status answers in a row); check that provider= "
                        f"matches the service. The job is not lost: sora_nb.attach({video_id!r}) asks again"
                    ) from None
            if failures > MAX_TRANSIENT_FAILURES or time.monotonic() > until:
                raise
            log.info("sora_nb: status of %s unavailable (%s); trying again", video_id, type(exc).__name__)
            due = time.monotonic() + min(30.0, 2.0**failures)
            continue
        failures = odd = 0
        job.update_from(video, moment)
        if video.done:
            return video
        delay = next_delay(hint=video.poll_after, eta=job.eta, elapsed=job.elapsed, span=job.eta_span)
        if time.monotonic() + delay > until:
            status = one_line(video.raw_status, SHOWN_STATUS)
            raise errors.DeadlineExceededError(
                f"{video_id!r} was still {status!r} after {deadline:.0f} s; it is not lost: "
                f"sora_nb.attach({video_id!r}) picks it up again"
            )
        due = time.monotonic() + delay
