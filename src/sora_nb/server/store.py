"""Jobs, uploaded files and characters of the local server, kept in memory and persisted in a data directory.

The store keeps each job's record and files; its engine (:mod:`sora_nb.server.engines`) makes the files and says
where the job stands, and the store adds expiry. A job interrupted by a restart is started again.
A sweeper thread deletes the media of expired jobs and uploads unused for the retention time, at start and
then periodically, so ``retention`` bounds the disk the server uses without anyone asking for the files.

Layout of the data directory (``<key>`` is a filesystem-safe encoding of the ID; IDs never become paths)::

    jobs/<key>/job.json, video.mp4, thumbnail.webp, spritesheet.jpg, input.png, source.mp4
    files/<key>/meta.json, blob
    characters/<key>/character.json, video.mp4
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sora_nb.server.engines import Engine
from sora_nb.server.records import ASSETS, JobRecord, Kind, VideoState

log = logging.getLogger("sora_nb.server")

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


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary sibling, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def new_id(prefix: str, *, base64_ids: bool = False, style: str = "hex48") -> str:
    """A fresh ID; with ``base64_ids`` one holding ``/``, ``+`` and ``=`` as some relays issue them; ``style``
    ``hex32``/``hex12`` has that many hex digits, ``uuid`` is a UUID4 (with ``prefix``, usually empty)."""
    if style == "uuid":
        return prefix + str(uuid.uuid4())
    if not base64_ids:
        return prefix + secrets.token_hex({"hex32": 16, "hex12": 6}.get(style, 24))
    while True:
        candidate = base64.b64encode(secrets.token_bytes(16)).decode()
        if "/" in candidate and "+" in candidate:
            return prefix + candidate


class Store:
    """The server's jobs, files and characters; thread-safe; ``engine`` makes the jobs' files."""

    def __init__(
        self,
        data_dir: Path,
        engine: Engine,
        *,
        retention: float = 86400.0,
        id_prefix: str = "video_",
        base64_ids: bool = False,
        id_style: str = "hex48",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.engine = engine
        self.retention = retention
        self.id_prefix, self.base64_ids, self.id_style = id_prefix, base64_ids, id_style
        self._jobs: dict[str, JobRecord] = {}
        self._orphans: dict[str, JobRecord] = {}  # deleted without cancelling: still rendering (SGLang, Aquiles)
        self._lock = threading.RLock()
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
            if job.render_done_at is None:
                self._start(job)

    def _save(self, job: JobRecord) -> None:
        write_json_atomic(self.job_dir(job.id) / "job.json", asdict(job))

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
        gen_params: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Record a new job, persist it and start making its files."""
        with self._lock:
            job_id = new_id(self.id_prefix, base64_ids=self.base64_ids, style=self.id_style)
            while job_id in self._jobs:
                job_id = new_id(self.id_prefix, base64_ids=self.base64_ids, style=self.id_style)
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
                scene_prompt=scene_prompt if scene_prompt is not None else prompt,
                segment_seconds=segment_seconds,
                remixed_from=remixed_from,
                source_id=source_id,
                has_image=image_png is not None,
                has_source=source_video is not None,
                metadata=metadata,
                characters=list(characters or []),
                gen_params=gen_params,
            )
            self.engine.admit(job)
            directory = self.job_dir(job_id)
            directory.mkdir(parents=True, exist_ok=True)
            if image_png is not None:
                (directory / "input.png").write_bytes(image_png)
            if source_video is not None:
                shutil.copyfile(source_video, directory / "source.mp4")
            self._save(job)
            self._jobs[job_id] = job
            self._start(job)
            return job

    def _start(self, job: JobRecord) -> None:
        self.engine.start(job, self.job_dir(job.id), self._files_done)

    def _files_done(self, job_id: str, error: str | None) -> None:
        """The engine's report that a job's files are made (``error`` None) or cannot be."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                if self._orphans.pop(job_id, None) is not None:  # deleted while rendering: its files go now
                    shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
                return
            if error is not None:
                job.render_error = error
            else:
                directory = self.job_dir(job_id)
                for variant, (name, _) in ASSETS.items():
                    stat = (directory / name).stat()
                    job.etags[variant] = f'"{variant}-{stat.st_size:x}-{int(stat.st_mtime_ns):x}"'
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
        return len(self.unfinished(now))

    def unfinished(self, now: float | None = None) -> list[VideoState]:
        """The jobs queued or in progress, deleted ones whose render goes on included."""
        now = time.time() if now is None else now
        with self._lock:
            jobs = [*self.jobs(), *self._orphans.values()]
        states = (self.state(job, now) for job in jobs)
        return [s for s in states if s.status in ("queued", "in_progress")]

    def state(self, job: JobRecord, now: float | None = None) -> VideoState:
        """The job's status, progress and times at ``now``, as its engine reports them, with expiry added."""
        now = time.time() if now is None else now
        where = self.engine.state(job, now)
        expires_at = None
        if where.status == "completed" and where.completed_at is not None:
            expires_at = where.completed_at + self.retention
        return VideoState(
            job=job,
            status=where.status,
            progress=where.progress,
            completed_at=where.completed_at,
            expires_at=expires_at,
            expired=expires_at is not None and now >= expires_at,
            error=where.error,
            remaining=where.remaining,
        )

    def asset(self, job: JobRecord, variant: str) -> Path:
        """The path of a finished job's asset (``video``, ``thumbnail`` or ``spritesheet``)."""
        return self.job_dir(job.id) / ASSETS[variant][0]

    def expire_assets(self, job: JobRecord) -> None:
        """Delete an expired job's media and input files (the record stays, as on the hosted service)."""
        directory = self.job_dir(job.id)
        with self._lock:
            self.engine.release(directory)
            for name in (*(name for name, _ in ASSETS.values()), *INPUTS):
                (directory / name).unlink(missing_ok=True)

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

    def delete(self, job_id: str, *, cancel: bool = True) -> bool:
        """Delete a job and its files, stopping its engine's work on it (unless not ``cancel``: then its files
        go when the render ends, as on engines that cannot abort a job); False if unknown."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
            if job is None:
                return False
            if not cancel and job.render_done_at is None and job.blocked_word is None:
                self._orphans[job_id] = job
                (self.job_dir(job_id) / "job.json").unlink(missing_ok=True)
                return True
            self.engine.cancel(job_id)
            gone = self.job_dir(job_id)
            self.engine.release(gone)
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
        """Stop the sweeps (the engine, which the store was given, is closed by its owner). Taking the lock waits
        for a report being written (:meth:`_files_done`), so a job whose files are made is saved as finished."""
        self._stop.set()
        self._sweeper.join()
        with self._lock:
            pass
