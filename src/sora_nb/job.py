"""The Job: lookup -> create -> poll -> download -> cache, as an observable state machine on the runner loop.

A request's fingerprint is looked up in the cache's index first: a cached video costs nothing, a known job is
re-attached, and only an unknown request is created, under a cross-process lock, with its ID recorded the
moment the create returns. Finished videos are downloaded at once (``delivery.py``), so expiring assets are
saved in time. The video alone decides a job's success; its thumbnail and spritesheet follow, both at once, and
one that is slow arrives on the job (and its widget) later, in the background. The ways to start a job
(``submit``, ``remix``, ...) are in ``jobs.py``, which re-exports ``Job``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any, Literal

from sora_nb import errors
from sora_nb.cache import CachedVideo, VideoCache
from sora_nb.config import settings
from sora_nb.costs import Budget, estimate_job
from sora_nb.delivery import deliver
from sora_nb.discovery import complete_request
from sora_nb.engine import Engine, get_engine
from sora_nb.errors import one_line
from sora_nb.pace import EtaSource, Pace, PastJobs, past_jobs
from sora_nb.polling import poll
from sora_nb.providers import ImageInput, get_provider
from sora_nb.request import OPEN_PARAMS
from sora_nb.runner import get_runner
from sora_nb.video import SHOWN_STATUS, Video

log = logging.getLogger("sora_nb")

JobStatus = Literal["pending", "queued", "in_progress", "downloading", "completed", "failed", "cancelled"]
Kind = Literal["generate", "remix", "edit", "extend", "attach"]


class Job:
    """One video job: observable state, ``await job``, ``job.result()``, ``job.cancel()``.

    State: ``status`` (pending, queued, in_progress, downloading, completed, failed, cancelled), ``progress``
    (0-100, or None when there is no real percentage: the engine gives none, its profile says its numbers are
    not one (SGLang, vLLM-Omni: 0 then 100; Aquiles: faked to 90), or they sit unchanged for long; the raw
    number stays on ``video.progress``), ``elapsed``, ``eta`` (seconds or None), ``eta_source`` ("progress":
    the trend of real percentages; "history": ``history``, similar past jobs on this backend; None without an
    ETA), ``history`` (a :class:`~sora_nb.pace.PastJobs` or None), ``bytes_done``/``bytes_total``, ``error``,
    ``video`` (the last record), ``id``, ``path``, ``thumbnail``, ``spritesheet``, ``cached``, ``backend``,
    ``local`` (whether it runs on the embedded local preview server), ``note`` (why a job waits: "waiting: the
    engine at host:port runs 1 job at a time" while a busy engine's refusal queues it; None otherwise).
    ``thumbnail`` and ``spritesheet`` may arrive after the job has completed (they never hold up the video).
    Observers registered with :meth:`observe` are called on the runner thread after each change.
    """

    def __init__(
        self,
        kind: Kind,
        request: Mapping[str, Any],
        *,
        video_id: str | None = None,
        new: bool = False,
        image: ImageInput | None = None,
        source_path: Path | None = None,
        source_job: Job | None = None,
    ) -> None:
        self.kind = kind
        self.request = dict(request)
        self.new = new
        self.status: JobStatus = "pending"
        self.progress: int | None = None
        self.eta: float | None = None
        self.eta_source: EtaSource | None = None
        self.history: PastJobs | None = None
        self.bytes_done = 0
        self.bytes_total: int | None = None
        self.error: errors.SoraError | None = None
        self.note: str | None = None
        self.video: Video | None = None
        self.id = video_id
        self.path: Path | None = None
        self.thumbnail: Path | None = None
        self.spritesheet: Path | None = None
        self.cached = False
        self.cost = 0.0
        self.backend = ""
        self.local = settings().local  # confirmed by the engine once the job runs
        self.started = time.monotonic()
        self.finished: float | None = None
        self._image = image
        self._source_path = source_path
        self._source_job = source_job  # a remix/edit/extension is priced by its source's record
        self._answered: Video | None = None  # a synchronous engine's create answer: the finished video itself
        self._observers: list[Callable[[Job], None]] = []
        self.pace = Pace()
        self._lookup: asyncio.Future[PastJobs | None] | None = None  # held: a task nobody holds may be collected
        self._future: concurrent.futures.Future[Path] = get_runner().submit(self._run())

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, status={self.status!r})"

    # ----- observing and waiting ----------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the job started (frozen once it has finished)."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def eta_span(self) -> float | None:
        """Seconds of progress readings the ETA is drawn from (None: not from readings)."""
        return self.pace.trend.span() if self.eta_source == "progress" else None

    @property
    def done(self) -> bool:
        """Whether the job has finished (completed, failed or cancelled)."""
        return self._future.done()

    def observe(self, callback: Callable[[Job], None]) -> Callable[[], None]:
        """Call ``callback(job)`` after every state change; returns a function that stops it."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def _set(self, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        for callback in list(self._observers):
            try:
                callback(self)
            except Exception:  # an observer's bug must not break the job
                log.exception("sora_nb: a job observer failed")

    def result(self, timeout: float | None = None) -> Path:
        """Wait for the video and return its cached path; raises the job's error (a SoraError)."""
        try:
            return self._future.result(timeout)
        except concurrent.futures.CancelledError:
            raise self.error or errors.JobCancelledError("the job was cancelled") from None

    def __await__(self) -> Generator[Any, None, Path]:
        return self._wait().__await__()

    async def _wait(self) -> Path:
        try:
            # shielded: a caller's own timeout (``asyncio.wait_for(job, 5)``) stops its wait, never the job;
            # only cancel() cancels, since on several engines a DELETE kills the render
            return await asyncio.shield(asyncio.wrap_future(self._future))
        except asyncio.CancelledError:
            if self._future.cancelled():
                raise self.error or errors.JobCancelledError("the job was cancelled") from None
            raise

    def retry(self) -> Job:
        """A new job for the same request: a fresh take (an attached job is attached again)."""
        if self.kind == "attach":
            return Job("attach", {}, video_id=self.id)
        return Job(
            self.kind,
            self.request,
            new=True,
            image=self._image,
            source_path=self._source_path,
            source_job=self._source_job,
        )

    def cancel(self) -> None:
        """Stop the job: polling stops and a job still running on the server is deleted there (best effort)."""
        if not self._future.done():
            self._future.cancel()

    # ----- the state machine --------------------------------------------------------------------------------
    async def _run(self) -> Path:
        key: str | None = None
        engine: Engine | None = None
        try:
            engine = await get_engine()
            self._set(backend=engine.backend.label, local=engine.backend.local)
            self.request = await complete_request(engine, self.kind, self.request, new=self.new)  # served model
            if self.id is None:
                key = engine.request_key(self.kind, self.request)
                self.id = None if self.new else engine.cache.lookup(key)
            if self.id is not None and (hit := engine.cache.get(self.id)) is not None:
                if (pending := engine.aux.get(self.id)) is not None:  # its images are still on their way
                    pending.add_done_callback(lambda _: self._aux_arrived(engine.cache))
                return self._finish_cached(hit)
            lookup = functools.partial(past_jobs, engine.cache, engine.backend.identity, self.request)
            self.pace.bind(get_provider(engine.backend.provider).progress, lookup, fresh=self.id is None)
            async with engine.slots:
                if self.id is None:
                    assert key is not None
                    await self._create(engine, key)
                assert self.id is not None
                video = self._answered or await poll(engine.poller, self.id, self, deadline=engine.settings.deadline)
                engine.admission.release(self)  # it ended on the server: the next job may go while this downloads
                if video.status == "failed":
                    reason = video.error.message if video.error else "no reason given"
                    raise errors.GenerationFailedError(
                        f"{video.id!r} failed: {one_line(reason)}", code=video.error.code if video.error else None
                    )
                if video.status != "completed":
                    raise errors.GenerationFailedError(
                        f"{video.id!r} ended as {one_line(video.raw_status, SHOWN_STATUS)!r}", code=video.status
                    )
                return await self._download(engine, video)
        except asyncio.CancelledError:
            self._set(
                status="cancelled", error=errors.JobCancelledError("the job was cancelled"), finished=time.monotonic()
            )
            if engine is not None:
                await self._cleanup_cancelled(engine, key)
            raise
        except errors.SoraError as exc:
            if (
                key is not None
                and engine is not None
                and isinstance(exc, errors.GenerationFailedError | errors.NotFoundError | errors.VideoExpiredError)
            ):
                engine.cache.forget(key)  # the next run makes a fresh job instead of re-attaching to this one
            self._set(status="failed", error=exc, finished=time.monotonic())
            raise
        except Exception as exc:  # a bug must still surface as the job's error, not vanish
            log.exception("sora_nb: job failed unexpectedly")
            error = errors.SoraError(f"unexpected error in sora_nb: {exc!r}; please report it")
            self._set(status="failed", error=error, finished=time.monotonic())
            raise error from exc
        finally:
            if engine is not None:
                engine.admission.release(self)  # no longer followed (failed, cancelled, past the deadline)
                await engine.release()

    def _finish_cached(self, hit: CachedVideo) -> Path:
        assert hit.path is not None
        self._set(
            status="completed",
            progress=100,
            path=hit.path,
            thumbnail=hit.thumbnail,
            spritesheet=hit.spritesheet,
            cached=True,
            video=hit.video,
            eta=0.0,
            finished=time.monotonic(),
        )
        return hit.path

    async def _create(self, engine: Engine, key: str) -> None:
        async with engine.guard(f"request:{key}"):
            await self._create_locked(engine, key)

    async def _create_locked(self, engine: Engine, key: str) -> None:
        lock = engine.cache.request_lock(key)
        await asyncio.to_thread(lock.acquire)
        try:
            # another process may have created it; an unusable entry is dropped here, under the lock
            found = engine.cache.lookup(key, drop_unusable=True)
            self.id = None if self.new else found
            if self.id is not None:
                return
            source = self._source_job or self._source_path or self.request.get("source")
            cost = await asyncio.to_thread(  # a local MP4 source is probed for its length
                estimate_job,
                self.kind,
                self.request,
                source,
                engine.cache,
                engine.settings,
                local=engine.backend.local,
                self_hosted=bool(engine.backend.engine),
            )
            budget = Budget(engine.cache.root, user=engine.settings.user)
            usd = budget.reserve(cost, engine.settings.budget_usd)  # BudgetExceededError: nothing is sent
            try:  # a busy engine's refusal queues the job here, the reservation held; nothing else is re-sent
                video = await engine.admission.admit(
                    self, lambda: self._send_create(engine), deadline=engine.settings.deadline, notify=self._waiting
                )
            except BaseException:
                if usd:
                    budget.refund(usd)
                raise
            engine.cache.remember(key, video.id, self.request)  # before anything else: a paid job is never lost
            if video.shared and usd:  # a relay shares a job another student paid for: it costs this one nothing
                budget.refund(usd)
                usd = 0.0
            budget.confirm(video.id, usd)
            self.cost = 0.0 if video.shared else cost.usd or 0.0
            self.cached = self.cached or video.shared
            self.id = video.id
            self.update_from(video)
        finally:
            lock.release()

    def _waiting(self, note: str | None) -> None:
        """Admission's word: why the job waits for the engine (it stays queued), or None once it is accepted."""
        if note is not None:
            self._set(status="queued", note=note)
        elif self.note is not None:
            self._set(note=None)

    async def _send_create(self, engine: Engine) -> Video:
        client, r = engine.client, self.request
        if self.kind == "generate":
            extra = dict(r.get("extra") or {})
            if client.provider.synchronous:
                self._set(status="in_progress")  # the engine renders while this one request is open
            video = await client.create(
                r["prompt"],
                model=r.get("model"),
                size=r.get("size"),
                seconds=r.get("seconds"),
                seed=r.get("seed"),
                image=self._image,
                **{name: r.get(name) for name in OPEN_PARAMS},
                result_path=lambda video_id: engine.cache.asset_path(video_id, "video"),  # written whole, or not
                render_timeout=engine.settings.deadline,  # it renders while the request is open
                **extra,
            )
            if video.status == "completed" and client.provider.synchronous:
                self._answered = video  # no polling: downloaded (its url) or already in the cache (its bytes)
            return video
        if self.kind == "remix":
            return await client.remix(r["source"], r["prompt"])
        source: str | Path = self._source_path or r["source"]
        if self.kind == "edit":
            return await client.edit(source, r["prompt"])
        return await client.extend(source, r["prompt"], r["seconds"])

    def update_from(self, video: Video, moment: float | None = None) -> None:
        """Take in a status answer, which describes ``moment`` (``time.monotonic()``)."""
        reading = self.pace.read(video, moment)
        status: JobStatus = "queued" if video.status == "queued" else "in_progress"
        self._set(
            video=video,
            status=status if not video.done else self.status,
            progress=reading.progress,
            eta=reading.eta,
            eta_source=reading.source,
        )
        if not video.done and (lookup := self.pace.take_lookup()) is not None:
            self._lookup = asyncio.ensure_future(asyncio.to_thread(lookup))  # it reads the cache: off the loop
            self._lookup.add_done_callback(self._history_found)

    def _history_found(self, task: asyncio.Future[PastJobs | None]) -> None:
        """Similar past jobs have been looked for: the ETA of a job without a real percentage comes from them."""
        if task.cancelled() or (problem := task.exception()) is not None:
            log.info(
                "sora_nb: no ETA from past jobs: the cache could not be read (%r)",
                None if task.cancelled() else problem,
            )
            return
        self.pace.past = task.result()
        running = self.status in ("pending", "queued", "in_progress") and not self.pace.known
        eta = self.pace.history_eta() if running else self.eta
        self._set(
            history=self.pace.past, eta=eta, eta_source="history" if running and eta is not None else self.eta_source
        )

    async def _download(self, engine: Engine, video: Video) -> Path:
        self._set(status="downloading", progress=100)
        hit = await deliver(
            engine,
            video,
            request=self.request,
            duration=self.pace.duration(video),  # later ETAs of jobs like this one come from it
            answered=self._answered is not None,
            on_bytes=lambda done, total: self._set(bytes_done=done, bytes_total=total),
            on_images=lambda: self._aux_arrived(engine.cache),
        )
        assert hit.path is not None
        self._set(
            status="completed",
            path=hit.path,
            thumbnail=hit.thumbnail,
            spritesheet=hit.spritesheet,
            video=video,
            eta=0.0,
            finished=time.monotonic(),
        )
        return hit.path

    def _aux_arrived(self, cache: VideoCache) -> None:
        """The images of this job's video have arrived (or given up): show what there is."""
        hit = cache.get(self.id) if self.id is not None else None
        if hit is not None:
            self._set(thumbnail=hit.thumbnail, spritesheet=hit.spritesheet)

    async def _cleanup_cancelled(self, engine: Engine, key: str | None) -> None:
        if key is not None:
            engine.cache.forget(key)
        if self.id is not None and (self.video is None or not self.video.done):
            with contextlib.suppress(errors.SoraError):
                await asyncio.shield(engine.client.delete(self.id))
