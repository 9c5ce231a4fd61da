"""The relay engine: each store job (a student's video) shows one upstream job, submitted once, followed and
fetched once into the relay's store.

It is an :class:`~sora_nb.server.engines.Engine`: the store calls ``admit`` (here the budget check and the
choice of upstream job, one ledger transaction), ``start`` (attach the video to its upstream job, following that
job if nobody does yet) and ``state``. The upstream calls run on one event loop in a thread of the engine's own,
through :class:`sora_nb.client.AsyncVideosClient` with the upstream's provider profile; the upstream key lives in
that client only. A finished upstream job's files are downloaded once into ``content/<key>/`` and hard-linked
into each video's directory (so deleting one video leaves the others' files).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sora_nb import errors
from sora_nb.admission import Admission as UpstreamPlaces
from sora_nb.client import AsyncVideosClient
from sora_nb.delivery import DOWNLOAD_ATTEMPTS, download_video
from sora_nb.server.engines import EngineState, FilesDone
from sora_nb.server.records import ASSETS, JobRecord
from sora_nb.server.relay.settings import UPSTREAM_KEY_ENV as KEY_ENV
from sora_nb.server.relay.storage import Admission, RelayStorage, Upstream
from sora_nb.server.store import safe_key
from sora_nb.video import Video

log = logging.getLogger("sora_nb.server.relay")
UPSTREAM_DEADLINE = 3 * 3600.0  # seconds an upstream create may wait for a place (a one-at-a-time engine)
LOST = (
    "The relay stopped while sending this request upstream, so it cannot tell whether the job was made; "
    "it was not sent again and you were not charged. Submit it again."
)


@dataclass(frozen=True)
class Pending:
    """The create being admitted: who asks, the request's fingerprint and record, and its price."""

    user: str
    fingerprint: str
    request: dict[str, Any]
    price: float
    share: bool


@dataclass
class _Following:
    """An upstream job the engine follows, and the videos waiting for its files."""

    status: str = "queued"
    progress: int = 0
    remaining: float = 5.0
    waiting: dict[str, tuple[Path, FilesDone]] = field(default_factory=dict)
    task: Future[None] | None = None


class RelayEngine:
    """Store jobs backed by upstream jobs; see the module docstring. ``client`` makes the upstream client."""

    def __init__(
        self,
        storage: RelayStorage,
        client: Callable[[], AsyncVideosClient],
        content_dir: Path,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self.storage, self.content_dir, self.poll_interval = storage, content_dir, poll_interval
        content_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._admit_lock = threading.Lock()
        self._pending: Pending | None = None
        self._admitted: dict[str, Admission] = {}
        self._links: dict[str, str] = {}  # video ID -> upstream key
        self._following: dict[str, _Following] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sora-nb-relay", daemon=True)
        self._thread.start()
        self.client: AsyncVideosClient = self._call(self._make(client))
        # an upstream that refuses a create for capacity (an engine that runs one job at a time, a 429) created
        # nothing: the create waits for a place as a notebook's job does, learning the upstream's concurrency
        self._places = UpstreamPlaces(self.client.wire.server)
        for upstream in storage.unfinished_upstreams():
            if upstream.upstream_id is None:  # its create was in flight when an earlier relay stopped
                storage.update_upstream(upstream.key, status="failed", error_code="relay_restarted", error=LOST)
                storage.refund(upstream.key)

    @staticmethod
    async def _make(client: Callable[[], AsyncVideosClient]) -> AsyncVideosClient:
        return client()  # made on the engine's loop, where it is used

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # ----- admission (the store calls admit inside create) --------------------------------------------------
    @contextlib.contextmanager
    def admitting(self, pending: Pending) -> Iterator[None]:
        """Within this block, the store's next ``create`` is admitted as ``pending`` (one create at a time, so
        limits checked in the block hold for it)."""
        with self._admit_lock:
            self._pending = pending
            try:
                yield
            finally:
                self._pending = None

    def admission(self, video_id: str) -> Admission | None:
        """How a video just made was admitted (a hit or not, its charge); asked once, by the create route."""
        return self._admitted.pop(video_id, None)

    def admit(self, job: JobRecord) -> None:
        """Record the video in the ledger: BudgetRefused (nothing recorded) if it cannot be paid for."""
        p = self._pending
        if p is None:
            raise RuntimeError("a relay job is made only by the relay's create route")
        self._admitted[job.id] = self.storage.admit(
            job.id, p.user, p.fingerprint, p.request, p.price, share=p.share, now=job.created_at
        )

    # ----- the Engine protocol ------------------------------------------------------------------------------
    def start(self, job: JobRecord, directory: Path, done: FilesDone) -> None:
        """Attach the video to its upstream job: its files now if that job is done, else when they arrive."""
        with self._lock:  # the ledger's status and the followers change together, under this lock
            row = self.storage.video(job.id)
            upstream = self.storage.upstream(row.upstream_key) if row else None
            if row is None or upstream is None:
                done(job.id, "The relay has no record of this video; submit it again.")
                return
            self._links[job.id] = upstream.key
            if upstream.status == "failed":
                done(job.id, upstream.error or "The upstream job failed.")
                return
            if upstream.status == "completed" and self._deliver(job.id, upstream.key, directory, done):
                return
            following = self._following.setdefault(upstream.key, _Following())
            following.waiting[job.id] = (directory, done)
            if following.task is None:
                following.task = asyncio.run_coroutine_threadsafe(self._follow(upstream.key), self._loop)

    def state(self, job: JobRecord, now: float) -> EngineState:
        """The video's state: the upstream job's while it runs; completed once its files are in place."""
        if job.render_done_at is not None:
            if job.render_error is None:
                return EngineState("completed", 100, 0.0, completed_at=job.render_done_at)
            key = self._links.get(job.id)
            upstream = self.storage.upstream(key) if key else None
            code = upstream.error_code if upstream and upstream.error_code else "upstream_failed"
            error = {"code": code, "message": job.render_error}
            return EngineState("failed", 0, 0.0, completed_at=job.render_done_at, error=error)
        with self._lock:
            following = self._following.get(self._links.get(job.id, ""))
            if following is None:
                return EngineState("queued", 0, self.poll_interval)
            running = following.status in ("in_progress", "fetching")
            return EngineState("in_progress" if running else "queued", min(following.progress, 99), following.remaining)

    def cancel(self, job_id: str) -> None:
        """The student deleted the video: stop waiting for it (the upstream job goes on for the others)."""
        with self._lock:
            key = self._links.pop(job_id, None)
            if key in self._following:
                self._following[key].waiting.pop(job_id, None)

    def release(self, directory: Path) -> None:
        """Nothing to do: a video's files are links to the relay's one copy."""

    def close(self) -> None:
        """Stop following (the upstream jobs are followed again when a relay opens the same data directory)."""
        if not self._thread.is_alive():  # closed already
            return
        with self._lock:
            tasks = [f.task for f in self._following.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            self._call(self.client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # ----- following an upstream job ------------------------------------------------------------------------
    def files_dir(self, key: str) -> Path:
        """Where an upstream job's files are kept, once."""
        return self.content_dir / safe_key(key)

    def _set(self, key: str, **changes: Any) -> None:
        with self._lock:
            following = self._following.get(key)
            if following is not None:
                for name, value in changes.items():
                    setattr(following, name, value)

    async def _follow(self, key: str) -> None:
        upstream = self.storage.upstream(key)
        if upstream is None or upstream.status == "failed":  # it failed before this task began
            with self._lock:
                following = self._following.pop(key, None)
            for video_id, (_, done) in (following.waiting if following else {}).items():
                done(video_id, upstream.error if upstream and upstream.error else "The upstream job ended.")
            return
        try:
            upstream_id = upstream.upstream_id or await self._submit(upstream)
            if upstream_id is None:
                return
            if upstream.status == "completed":  # completed before, but the relay's copy is gone
                await self._fetch(key, upstream_id, None)
            elif (video := await self._wait(key, upstream_id)) is not None:
                self._places.release(key)  # it ended upstream: the next create may go while this one downloads
                await self._fetch(key, upstream_id, video.url)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave students waiting forever: fail their videos
            log.exception("relay: following upstream job %s failed", key)
            self._fail(key, "relay_error", f"The relay failed while following this job ({type(exc).__name__}).")
        finally:
            self._places.release(key)  # ended, failed or no longer followed: its place goes to the next create

    async def _submit(self, upstream: Upstream) -> str | None:
        request = dict(upstream.request)
        try:
            if request.get("kind") == "remix":
                send = lambda: self.client.remix(request["source"], request["prompt"])  # noqa: E731
            else:
                send = lambda: self.client.create(  # noqa: E731
                    request["prompt"],
                    model=request.get("model"),
                    size=request.get("size"),
                    seconds=request.get("seconds"),
                    seed=request.get("seed"),
                )
            video = await self._places.admit(upstream.key, send, deadline=UPSTREAM_DEADLINE, notify=lambda _: None)
        except errors.SoraError as exc:
            refunded = self.storage.refund(upstream.key)
            note = f" The ${refunded:.2f} charged was refunded." if refunded else ""
            reason = f"The upstream service refused it: {exc}"
            if isinstance(exc, errors.AuthenticationError):  # the teacher's problem, and no text about the key
                log.warning("relay: the upstream refused the relay's key (HTTP %s); check %s", exc.status, KEY_ENV)
                reason = f"The upstream service refused the relay's key (HTTP {exc.status}); tell your teacher."
            self._fail(upstream.key, exc.code or "upstream_refused", reason + note)
            return None
        # recorded the moment the create returns: a restart follows this job again instead of making another
        self.storage.update_upstream(upstream.key, upstream_id=video.id, status=video.status)
        return video.id

    async def _wait(self, key: str, upstream_id: str) -> Video | None:
        """Poll the upstream job until it ends: its record when it completed, None (its videos failed) otherwise."""
        delay = self.poll_interval
        while True:
            try:
                video = await self.client.retrieve(upstream_id)
            except errors.NotFoundError:
                self._fail(key, "upstream_lost", "The upstream service no longer knows this job; submit it again.")
                return None
            except errors.SoraError as exc:  # a flaky upstream: keep following, more slowly
                log.warning("relay: polling upstream job %s: %s", key, errors.one_line(str(exc)))
                delay = min(delay * 2, 30.0)
                await asyncio.sleep(delay)
                continue
            delay = self.poll_interval
            remaining = video.poll_after if video.poll_after is not None else self.poll_interval
            self._set(key, status=video.status, progress=video.progress or 0, remaining=remaining)
            if video.status == "completed":
                return video
            if video.status == "failed":
                reason = video.error.message if video.error else "no reason given"
                code = video.error.code if video.error and video.error.code else "upstream_failed"
                self._fail(key, code, f"The upstream job failed: {errors.one_line(reason)}")
                return None
            if video.status != self.storage_status(key):
                self.storage.update_upstream(key, status=video.status)
            await asyncio.sleep(min(max(video.poll_after or self.poll_interval, 0.05), 10.0))

    def storage_status(self, key: str) -> str | None:
        """The status the ledger has for an upstream job."""
        upstream = self.storage.upstream(key)
        return upstream.status if upstream else None

    async def _fetch(self, key: str, upstream_id: str, url: str | None) -> None:
        """Download the upstream job's files once (the video must arrive, from its result ``url`` where the
        content endpoint has none; a poster or sheet the upstream lacks is left out), then hand them to every
        waiting video. The downloader resumes dropped connections and retries 5xx itself."""
        self.storage.update_upstream(key, status="fetching")
        self._set(key, status="fetching", progress=99)
        directory = self.files_dir(key)
        directory.mkdir(parents=True, exist_ok=True)
        for variant, (name, _) in ASSETS.items():
            try:
                await download_video(
                    self.client,
                    upstream_id,
                    directory / name,
                    url=url,
                    variant=variant,  # type: ignore[arg-type]
                    attempts=DOWNLOAD_ATTEMPTS if variant == "video" else 1,  # a poster or sheet: tried once
                    pause=self.poll_interval,
                )
            except errors.SoraError as exc:
                if variant != "video":  # as the client does: a job without a poster is still a video
                    log.info("relay: no %s for upstream job %s (%s)", variant, key, errors.one_line(str(exc)))
                    continue
                log.warning("relay: fetching the video of %s: %s", key, errors.one_line(str(exc)))
                refunded = self.storage.refund(key)
                note = f" The ${refunded:.2f} charged was refunded." if refunded else ""
                self._fail(key, "upstream_download_failed", f"Its video could not be fetched: {exc}{note}")
                return
        with self._lock:
            self.storage.update_upstream(key, status="completed", done_at=time.time())
            following = self._following.pop(key, None)
        for video_id, (target, done) in (following.waiting if following else {}).items():
            self._deliver(video_id, key, target, done)

    def _deliver(self, video_id: str, key: str, target: Path, done: FilesDone) -> bool:
        """Link the upstream job's files into a video's directory and report them done; False if the relay's
        copy is gone (then it is fetched again)."""
        source = self.files_dir(key)
        if not (source / ASSETS["video"][0]).is_file():
            return False
        target.mkdir(parents=True, exist_ok=True)
        for name, _ in ASSETS.values():
            tmp = target / f".{name}.part"
            tmp.unlink(missing_ok=True)
            if (source / name).is_file():
                try:
                    os.link(source / name, tmp)
                except OSError:  # another filesystem, or no hard links: a copy
                    shutil.copyfile(source / name, tmp)
            else:
                tmp.write_bytes(b"")  # the upstream had none: an empty file, which the routes answer 404 for
            tmp.replace(target / name)
        done(video_id, None)
        return True

    def _fail(self, key: str, code: str, message: str) -> None:
        with self._lock:
            self.storage.update_upstream(key, status="failed", error_code=code, error=message, done_at=time.time())
            following = self._following.pop(key, None)
        for video_id, (_, done) in (following.waiting if following else {}).items():
            done(video_id, message)
