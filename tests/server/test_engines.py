"""The engine seam: the store asks its engine to make files and say where a job stands; the synthetic engine's
simulated schedule."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sora_nb.server.engines import EngineState, FilesDone
from sora_nb.server.engines.synthetic.schedule import Moderation, schedule, state_at
from sora_nb.server.records import ASSETS, JobRecord
from sora_nb.server.store import Store


class Scripted:
    """An engine whose jobs finish when a test says so: what a relay to an upstream service would look like."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Path]] = []
        self.cancelled: list[str] = []
        self.released: list[Path] = []
        self.done: dict[str, FilesDone] = {}
        self.upstream: dict[str, EngineState] = {}

    def admit(self, job: JobRecord) -> None:
        job.run_seconds = 7.0  # e.g. an upstream's estimate

    def start(self, job: JobRecord, directory: Path, done: FilesDone) -> None:
        self.started.append((job.id, directory))
        self.done[job.id] = done
        self.upstream[job.id] = EngineState(status="queued", progress=0, remaining=job.run_seconds)

    def finish(self, job_id: str, directory: Path, error: str | None = None) -> None:
        """The upstream job ends: fetch its files once (here: write them), then report."""
        if error is None:
            for name, _ in ASSETS.values():
                (directory / name).write_bytes(b"media")
            self.upstream[job_id] = EngineState(status="completed", progress=100, remaining=0.0, completed_at=1000.0)
        else:
            self.upstream[job_id] = EngineState(
                status="failed", progress=0, remaining=0.0, completed_at=1000.0, error={"code": "x", "message": error}
            )
        threading.Thread(target=self.done[job_id], args=(job_id, error)).start()

    def state(self, job: JobRecord, now: float) -> EngineState:
        if job.id in self.upstream:
            return self.upstream[job.id]
        if job.render_done_at is not None:  # finished before a restart: what its record says
            return EngineState(status="completed", progress=100, remaining=0.0, completed_at=job.render_done_at)
        return EngineState(status="queued", progress=0, remaining=job.run_seconds)

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def release(self, directory: Path) -> None:
        self.released.append(directory)

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Store, Scripted]]:
    engine = Scripted()
    store = Store(tmp_path, engine, retention=60.0)
    yield store, engine
    store.close()


def _create(store: Store, prompt: str = "a relayed clip") -> JobRecord:
    return store.create(kind="generate", model="sora-2", prompt=prompt, width=720, height=1280, seconds=4)


def _wait_done(store: Store, job: JobRecord) -> None:
    for _ in range(200):
        if job.render_done_at is not None:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the store never heard the engine's report")


def test_the_store_asks_the_engine_and_adds_expiry(store: tuple[Store, Scripted]) -> None:
    s, engine = store
    job = _create(s)
    assert job.run_seconds == 7.0 and engine.started == [(job.id, s.job_dir(job.id))]
    assert s.state(job).status == "queued" and s.state(job).expires_at is None
    engine.finish(job.id, s.job_dir(job.id))
    _wait_done(s, job)
    state = s.state(job, now=1030.0)
    assert (state.status, state.completed_at, state.expires_at, state.expired) == ("completed", 1000.0, 1060.0, False)
    assert s.state(job, now=1060.0).expired
    assert set(job.etags) == set(ASSETS) and (s.job_dir(job.id) / "job.json").is_file()


def test_a_failure_the_engine_reports_is_kept_and_never_expires(store: tuple[Store, Scripted]) -> None:
    s, engine = store
    job = _create(s)
    engine.finish(job.id, s.job_dir(job.id), error="the upstream refused it")
    _wait_done(s, job)
    state = s.state(job, now=10**9)
    assert job.render_error == "the upstream refused it" and state.status == "failed" and not state.expired


def test_delete_cancels_and_releases_while_expiry_only_releases(store: tuple[Store, Scripted]) -> None:
    s, engine = store
    gone, kept = _create(s, "deleted"), _create(s, "expired")
    s.delete(gone.id)
    assert engine.cancelled == [gone.id] and engine.released == [s.job_dir(gone.id)]
    s.expire_assets(kept)
    assert engine.cancelled == [gone.id] and engine.released[-1] == s.job_dir(kept.id)


def test_a_reopened_store_restarts_only_the_unfinished_jobs(tmp_path: Path) -> None:
    first = Scripted()
    s = Store(tmp_path, first)
    finished, unfinished = _create(s, "finished"), _create(s, "unfinished")
    first.finish(finished.id, s.job_dir(finished.id))
    _wait_done(s, finished)
    s.close()
    again = Scripted()
    reopened = Store(tmp_path, again)
    try:
        assert [job_id for job_id, _ in again.started] == [unfinished.id]
    finally:
        reopened.close()


# ----- the synthetic engine's schedule --------------------------------------------------------------------------
def _job(**fields: Any) -> JobRecord:
    base: dict[str, Any] = {"id": "video_1", "kind": "generate", "model": "sora-2", "prompt": "p", "width": 720}
    base |= {"height": 1280, "seconds": 4, "fps": 24, "seed": 0, "created_at": 100.0, "scene_prompt": "p"}
    return JobRecord(**{**base, **fields})


def test_schedule_scales_with_speed_and_extensions_run_for_their_added_seconds() -> None:
    job, extension, edit = _job(), _job(kind="extend", seconds=12, segment_seconds=4), _job(kind="edit")
    for j in (job, extension, edit):
        schedule(j, speed=2.0)
    assert (job.queue_seconds, job.run_seconds) == (0.25, 1.5)
    assert extension.run_seconds == job.run_seconds and edit.run_seconds == pytest.approx(0.99)


def test_state_follows_the_clock_and_waits_for_the_render() -> None:
    job = _job()
    schedule(job, speed=1.0)  # queued until 100.5, runs 3 s
    assert state_at(job, 100.2).status == "queued"
    running = state_at(job, 102.0)
    assert running.status == "in_progress" and running.progress == 50 and running.remaining == pytest.approx(1.5)
    late = state_at(job, 200.0)  # the schedule is over but the render is not
    assert (late.status, late.progress, late.remaining) == ("in_progress", 99, 0.25)
    job.render_done_at = 104.5
    done = state_at(job, 200.0)
    assert (done.status, done.progress, done.completed_at) == ("completed", 100, 104.5)


def test_a_blocked_word_fails_partway_through() -> None:
    job = _job(prompt="a Gore scene")
    schedule(job, speed=1.0)
    job.blocked_word = Moderation(("gore", " ")).first_blocked(job.prompt)
    assert job.blocked_word == "gore" and Moderation(("gore",)).first_blocked("goreous") is None
    assert state_at(job, 101.0).status == "in_progress"
    failed = state_at(job, 110.0)
    assert failed.status == "failed" and failed.progress == 30 and failed.error is not None
    assert failed.error["code"] == "moderation_blocked"
