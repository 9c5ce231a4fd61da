"""Jobs, uploaded files and characters of the local server, kept in memory and persisted in a data directory.

A job's status is a pure function of the clock, its simulated schedule (queue time, run time, both scaled by
the server's speed) and whether its real render has finished, so a restarted server answers the same way.
Renders run on a small thread pool, off the event loop; a job interrupted by a restart is rendered again.
A sweeper thread deletes the media of expired jobs and uploads unused for the retention time, at start and
then periodically, so ``retention`` bounds the disk the server uses without anyone asking for the files.

Layout of the data directory (``<key>`` is a filesystem-safe encoding of the ID; IDs never become paths)::

    jobs/<key>/job.json, video.mp4, thumbnail.webp, spritesheet.jpg, input.png, source.mp4
    files/<key>/meta.json, blob
    characters/<key>/character.json, video.mp4

The media of jobs made from an identical request are hard links to one set of files where the filesystem
allows it; nothing ever writes into a published file (renders write a temporary file and rename it), so
deleting or expiring one job leaves the others' files intact.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from sora_nb.server.engines.synthetic import RenderCancelled, RenderError, RenderResult, RenderSpec, render
from sora_nb.server.records import ASSETS, JobRecord, Kind, Status, VideoState

log = logging.getLogger("sora_nb.server")

QUEUE_SECONDS = 0.5
RUN_SECONDS_PER_CLIP_SECOND = 0.75
MODERATION_FAILS_AT = 0.3
INPUTS = ("input.png", "source.mp4")


def sweep_interval(retention: float) -> float:
    """Seconds between sweeps: a tenth of the retention, from 0.5 s to 10 minutes."""
    return min(600.0, max(0.5, retention / 10))


def safe_key(identifier: str) -> str:
    """A filesystem-safe, reversible directory name for any ID (base64url, no padding)."""
    return base64.urlsafe_b64encode(identifier.encode()).decode().rstrip("=")


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but False for a name too long for the filesystem (a caller's made-up ID)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _share(source: Path, target: Path) -> None:
    """Give ``target`` the bytes of ``source``: a hard link (no second copy) where the filesystem allows one."""
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:  # no hard links here (FAT, some network shares) or across devices: copy
        shutil.copyfile(source, target)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary sibling, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def new_id(prefix: str, *, base64_ids: bool = False) -> str:
    """A fresh ID; with ``base64_ids`` one holding ``/``, ``+`` and ``=`` as some relays issue them."""
    if not base64_ids:
        return prefix + secrets.token_hex(24)
    while True:
        candidate = base64.b64encode(secrets.token_bytes(16)).decode()
        if "/" in candidate and "+" in candidate:
            return prefix + candidate


class Store:
    """The server's jobs, files and characters; thread-safe; renders on a thread pool."""

    def __init__(
        self,
        data_dir: Path,
        *,
        speed: float = 1.0,
        retention: float = 86400.0,
        blocked_words: tuple[str, ...] = (),
        render_workers: int = 2,
        id_prefix: str = "video_",
        base64_ids: bool = False,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0 (1 = default pace, 10 = ten times faster)")
        self.data_dir = Path(data_dir)
        self.speed = speed
        self.retention = retention
        self.id_prefix, self.base64_ids = id_prefix, base64_ids
        self.blocked = [(word, re.compile(rf"\b{re.escape(word.lower())}\b")) for word in blocked_words if word.strip()]
        self._jobs: dict[str, JobRecord] = {}
        self._lock = threading.RLock()
        self._cancel: dict[str, threading.Event] = {}
        self._renders: dict[RenderSpec, tuple[Future[RenderResult], Path]] = {}  # first render of each spec
        self._pool = ThreadPoolExecutor(max_workers=max(1, render_workers), thread_name_prefix="sora-nb-render")
        for sub in ("jobs", "files", "characters"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self._load()
        self._sweep_logged()  # a server that was down past the retention frees that space now
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="sora-nb-sweep", daemon=True)
        self._sweeper.start()

    # ----- jobs -------------------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        """The directory of a job's files."""
        return self.data_dir / "jobs" / safe_key(job_id)

    def _load(self) -> None:
        for path in sorted((self.data_dir / "jobs").glob("*/job.json")):
            try:
                job = JobRecord(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable job record %s: %s", path, exc)
                continue
            self._jobs[job.id] = job
            if job.render_done_at is None and job.blocked_word is None:
                self._start_render(job)

    def _save(self, job: JobRecord) -> None:
        write_json_atomic(self.job_dir(job.id) / "job.json", asdict(job))

    def moderation(self, *texts: str) -> str | None:
        """The first blocked word found in ``texts``, if any."""
        for text in texts:
            lowered = text.lower()
            for word, pattern in self.blocked:
                if pattern.search(lowered):
                    return word
        return None

    def create(
        self,
        *,
        kind: Kind,
        model: str,
        prompt: str,
        width: int,
        height: int,
        seconds: float,
        fps: int = 24,
        seed: int = 0,
        scene_prompt: str | None = None,
        segment_seconds: float | None = None,
        remixed_from: str | None = None,
        source_id: str | None = None,
        image_png: bytes | None = None,
        source_video: Path | None = None,
        metadata: dict[str, Any] | None = None,
        characters: list[str] | None = None,
    ) -> JobRecord:
        """Record a new job, persist it and start its render."""
        clip = segment_seconds if segment_seconds is not None else seconds
        run = RUN_SECONDS_PER_CLIP_SECOND * clip * (0.66 if kind == "edit" else 1.0)
        with self._lock:
            job_id = new_id(self.id_prefix, base64_ids=self.base64_ids)
            while job_id in self._jobs:
                job_id = new_id(self.id_prefix, base64_ids=self.base64_ids)
            job = JobRecord(
                id=job_id,
                kind=kind,
                model=model,
                prompt=prompt,
                width=width,
                height=height,
                seconds=seconds,
                fps=fps,
                seed=seed,
                created_at=time.time(),
                queue_seconds=QUEUE_SECONDS / self.speed,
                run_seconds=run / self.speed,
                scene_prompt=scene_prompt if scene_prompt is not None else prompt,
                remixed_from=remixed_from,
                source_id=source_id,
                has_image=image_png is not None,
                has_source=source_video is not None,
                metadata=metadata,
                characters=list(characters or []),
                blocked_word=self.moderation(prompt),
            )
            directory = self.job_dir(job_id)
            directory.mkdir(parents=True, exist_ok=True)
            if image_png is not None:
                (directory / "input.png").write_bytes(image_png)
            if source_video is not None:
                shutil.copyfile(source_video, directory / "source.mp4")
            self._save(job)
            self._jobs[job_id] = job
            if job.blocked_word is None:
                self._start_render(job)
            return job

    def _spec(self, job: JobRecord) -> RenderSpec:
        directory = self.job_dir(job.id)
        mode: Literal["generate", "remix", "edit", "extend"] = job.kind
        text = job.prompt
        if job.characters:
            text = f"{text} (featuring {', '.join(job.characters)})"
        return RenderSpec(
            prompt=text,
            width=job.width,
            height=job.height,
            seconds=job.seconds,
            fps=job.fps,
            seed=job.seed,
            mode=mode,
            scene_prompt=job.scene_prompt if job.kind in ("remix", "extend") else None,
            image=directory / "input.png" if job.has_image else None,
            source=directory / "source.mp4" if job.has_source else None,
        )

    def _start_render(self, job: JobRecord) -> None:
        cancel = threading.Event()
        self._cancel[job.id] = cancel
        spec = self._spec(job)
        out = self.job_dir(job.id)
        with self._lock:
            # the renderer is deterministic: a request the server has rendered before (text only, no input
            # files) is copied from that render instead of rendered again (a class running the same notebook)
            reusable = spec.image is None and spec.source is None
            earlier = self._renders.get(spec) if reusable else None
            future = self._pool.submit(self._render_or_copy, spec, out, earlier, cancel.is_set)
            if reusable and earlier is None:
                self._renders[spec] = (future, out)
        future.add_done_callback(lambda f: self._render_done(job.id, f))

    @staticmethod
    def _render_or_copy(
        spec: RenderSpec,
        out: Path,
        earlier: tuple[Future[RenderResult], Path] | None,
        cancelled: Callable[[], bool],
    ) -> RenderResult:
        if earlier is not None:
            first, source = earlier
            try:
                done = first.result()  # waits while that render runs (it was queued before this task)
                if cancelled():  # this job was deleted meanwhile: leave no directory behind
                    raise RenderCancelled("cancelled")
                out.mkdir(parents=True, exist_ok=True)
                paths = {}
                for variant, (name, _) in ASSETS.items():
                    tmp = out / f".{name}.{secrets.token_hex(4)}.part"
                    _share(source / name, tmp)
                    paths[variant] = tmp.replace(out / name)
                return RenderResult(**paths, frames=done.frames, duration=done.duration)
            except (RenderError, OSError):  # that job failed, or its files are gone: render this one
                for leftover in out.glob(".*.part"):
                    leftover.unlink(missing_ok=True)
            except RenderCancelled:
                if cancelled():
                    raise
        return render(spec, out, cancelled=cancelled)

    def _render_done(self, job_id: str, future: Future[RenderResult]) -> None:
        with self._lock:
            self._cancel.pop(job_id, None)
            job = self._jobs.get(job_id)
            if job is None or future.cancelled():
                return
            exc = future.exception()
            if isinstance(exc, RenderCancelled):
                return
            if exc is not None:
                log.error("render of %s failed: %s", job_id, exc)
                job.render_error = (
                    str(exc) if isinstance(exc, RenderError) else "the local renderer failed; see the server log"
                )
            else:
                directory = self.job_dir(job_id)
                for variant, (name, _) in ASSETS.items():
                    stat = (directory / name).stat()
                    job.etags[variant] = f'"{variant}-{stat.st_size:x}-{int(stat.st_mtime_ns):x}"'
                spec = self._spec(job)
                if spec.image is None and spec.source is None:  # the source of later copies, if none is left
                    self._renders.setdefault(spec, (future, directory))
            job.render_done_at = time.time()
            if self.job_dir(job_id).exists():
                self._save(job)

    def get(self, job_id: str) -> JobRecord | None:
        """The job with this ID, or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[JobRecord]:
        """All jobs, oldest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: (j.created_at, j.id))

    def active_count(self, now: float | None = None) -> int:
        """How many jobs are queued or in progress."""
        now = time.time() if now is None else now
        return sum(self.state(job, now).status in ("queued", "in_progress") for job in self.jobs())

    def state(self, job: JobRecord, now: float | None = None) -> VideoState:
        """The job's status, progress and times at ``now``."""
        now = time.time() if now is None else now
        start = job.created_at + job.queue_seconds
        finish = start + job.run_seconds
        status: Status
        completed_at = expires_at = None
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
            expires_at = completed_at + self.retention
        expired = expires_at is not None and now >= expires_at
        return VideoState(
            job=job,
            status=status,
            progress=progress,
            completed_at=completed_at,
            expires_at=expires_at,
            expired=expired,
            error=error,
            remaining=remaining,
        )

    def asset(self, job: JobRecord, variant: str) -> Path:
        """The path of a finished job's asset (``video``, ``thumbnail`` or ``spritesheet``)."""
        return self.job_dir(job.id) / ASSETS[variant][0]

    def expire_assets(self, job: JobRecord) -> None:
        """Delete an expired job's media and input files (the record stays, as on the hosted service)."""
        directory = self.job_dir(job.id)
        with self._lock:
            self._forget_source(directory)
            for name in (*(name for name, _ in ASSETS.values()), *INPUTS):
                (directory / name).unlink(missing_ok=True)

    def _forget_source(self, directory: Path) -> None:
        """Stop copying later identical requests from the files in ``directory`` (they are going away)."""
        self._renders = {spec: first for spec, first in self._renders.items() if first[1] != directory}

    def sweep(self, now: float | None = None) -> None:
        """Delete the files of expired jobs, and uploads not used for ``retention`` seconds."""
        now = time.time() if now is None else now
        for job in self.jobs():
            if self.state(job, now).expired and (self.job_dir(job.id) / ASSETS["video"][0]).exists():
                self.expire_assets(job)
        for directory in (self.data_dir / "files").iterdir():
            blob = directory / "blob"
            # under the lock file_path() marks a use with; an entry that cannot be read is left for the next sweep
            with self._lock, contextlib.suppress(OSError):
                last_use = (blob if blob.exists() else directory).stat().st_mtime  # no blob: an upload cut short
                if now - last_use >= self.retention:
                    shutil.rmtree(directory, ignore_errors=True)

    def _sweep_logged(self) -> None:
        try:
            self.sweep()
        except OSError as exc:  # an unreadable or read-only data directory must not stop the server
            log.warning("sweeping expired files in %s failed: %s", self.data_dir, exc)

    def _sweep_forever(self) -> None:
        while not self._stop.wait(sweep_interval(self.retention)):
            self._sweep_logged()

    def delete(self, job_id: str) -> bool:
        """Delete a job and its files, cancelling its render if it is running; False if unknown."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
            if job is None:
                return False
            cancel = self._cancel.pop(job_id, None)
            if cancel is not None:
                cancel.set()
            gone = self.job_dir(job_id)
            self._forget_source(gone)
            shutil.rmtree(gone, ignore_errors=True)
            return True

    # ----- uploaded files and characters --------------------------------------------------------------------
    def put_file(self, data: bytes, *, filename: str, purpose: str) -> dict[str, Any]:
        """Keep an uploaded file; its record is the OpenAI ``file`` object."""
        file_id = new_id("file-")
        directory = self.data_dir / "files" / safe_key(file_id)
        directory.mkdir(parents=True)
        (directory / "blob").write_bytes(data)
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
        }
        write_json_atomic(directory / "meta.json", record)
        return record

    def file_path(self, file_id: str) -> Path | None:
        """The bytes of an uploaded file, or None if unknown; asking counts as a use (the sweep keeps it)."""
        path = self.data_dir / "files" / safe_key(file_id) / "blob"
        with self._lock:
            if not _is_file(path):
                return None
            with contextlib.suppress(OSError):  # a read-only data directory: the upload just ages
                os.utime(path)
            return path

    def put_character(self, name: str, video: Path) -> dict[str, Any]:
        """Keep a character made from an uploaded video."""
        char_id = new_id("char_")
        directory = self.data_dir / "characters" / safe_key(char_id)
        directory.mkdir(parents=True)
        shutil.copyfile(video, directory / "video.mp4")
        record = {"id": char_id, "object": "character", "name": name, "created_at": int(time.time())}
        write_json_atomic(directory / "character.json", record)
        return record

    def get_character(self, char_id: str) -> dict[str, Any] | None:
        """A character's record, or None if unknown."""
        path = self.data_dir / "characters" / safe_key(char_id) / "character.json"
        if not _is_file(path):
            return None
        record: dict[str, Any] = json.loads(path.read_text())
        return record

    def close(self) -> None:
        """Cancel running renders, stop the sweeps and the pool (unfinished jobs render again on the next start)."""
        self._stop.set()
        self._sweeper.join()
        with self._lock:
            for event in self._cancel.values():
                event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
