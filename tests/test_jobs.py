"""Jobs end to end against the real local server: never pay twice, never lose a video."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import sora_nb
from sora_nb import engine as engines
from sora_nb import errors
from sora_nb.server import ServerHandle
from tests.helpers import peak_active, wait_for_images

Configured = Callable[..., ServerHandle]


def engine_requests() -> dict[str, int]:
    assert engines._engine is not None
    return dict(engines._engine.client.requests)


def test_submit_reports_progress_and_caches_the_video(configured: Configured) -> None:
    handle = configured(speed=2.0)
    seen: list[tuple[str, int | None, float | None]] = []
    started = time.perf_counter()
    job = sora_nb.submit("a heron lifting off a lake", size="1280x720")
    returned = time.perf_counter() - started
    job.observe(lambda j: seen.append((j.status, j.progress, j.eta)))
    path = job.result(timeout=60)
    assert returned < 0.05
    assert path.is_file() and path.read_bytes()[4:8] == b"ftyp"
    assert job.status == "completed" and job.id and job.thumbnail and job.spritesheet
    statuses = [status for status, _, _ in seen]
    assert statuses.index("in_progress") < statuses.index("downloading") < statuses.index("completed")
    assert any(eta is not None for status, _, eta in seen if status == "in_progress")
    assert job.elapsed > 0 and job.backend == "127.0.0.1"
    assert repr(job) == f"Job(id={job.id!r}, status='completed')"
    assert len(handle.app.store.jobs()) == 1


def test_the_same_request_again_costs_nothing(configured: Configured) -> None:
    handle = configured()
    first = sora_nb.submit("a paper lantern", seconds=4).result(timeout=60)
    before = engine_requests()
    started = time.perf_counter()
    again = sora_nb.submit("a paper lantern", seconds=4)
    assert again.result(timeout=10) == first
    assert time.perf_counter() - started < 1.0
    assert again.cached and engine_requests() == before
    fresh = sora_nb.submit("a paper lantern", seconds=4, new=True)
    assert fresh.result(timeout=60) != first
    assert len(handle.app.store.jobs()) == 2


def test_the_index_is_written_before_any_polling(configured: Configured, tmp_path: Path) -> None:
    handle = configured(speed=0.3)
    job = sora_nb.submit("recorded at once")
    deadline = time.monotonic() + 10
    while job.id is None and time.monotonic() < deadline:
        time.sleep(0.01)
    index = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "requests").glob("*.json")]
    assert [entry["video_id"] for entry in index] == [job.id]
    assert index[0]["request"]["prompt"] == "recorded at once"
    assert handle.app.store.state(handle.app.store.get(job.id)).status in ("queued", "in_progress")  # type: ignore[arg-type]
    job.cancel()


def test_attach_picks_up_a_job_made_elsewhere(configured: Configured) -> None:
    handle = configured()
    created = handle.app.store.create(
        kind="generate", model="sora-2", prompt="made by another tool", width=720, height=1280, seconds=4
    )
    job = sora_nb.attach(created.id)
    assert job.result(timeout=60).is_file()
    assert sora_nb.video_cache().get(created.id) is not None
    assert engine_requests().get("create", 0) == 0


def test_failed_job_raises_and_is_forgotten(configured: Configured) -> None:
    configured()
    job = sora_nb.submit("a moderation-test scene")
    with pytest.raises(errors.GenerationFailedError) as failed:
        job.result(timeout=60)
    assert failed.value.code == "moderation_blocked" and job.status == "failed" and job.error is failed.value
    retry = sora_nb.submit("a moderation-test scene")
    with pytest.raises(errors.GenerationFailedError):
        retry.result(timeout=60)
    assert retry.id != job.id


def test_cancel_stops_the_job_and_deletes_it_on_the_server(configured: Configured) -> None:
    handle = configured(speed=0.2)
    job = sora_nb.submit("a very long take")
    while job.status != "queued" and job.status != "in_progress":
        time.sleep(0.02)
    job.cancel()
    with pytest.raises(errors.JobCancelledError):
        job.result(timeout=10)
    deadline = time.monotonic() + 5
    while handle.app.store.jobs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.app.store.jobs() == [] and job.status == "cancelled"


def test_deadline_keeps_the_job_attachable(configured: Configured) -> None:
    configured(speed=0.5)
    sora_nb.configure(deadline=0.5)
    job = sora_nb.submit("slow")
    with pytest.raises(errors.DeadlineExceededError, match="attach"):
        job.result(timeout=30)
    sora_nb.configure(deadline=None)
    assert job.id is not None
    assert sora_nb.attach(job.id).result(timeout=60).is_file()


@pytest.mark.parametrize("clock", ["result-timeout", "await-wait_for", "deadline"])
def test_the_clients_own_clock_never_cancels_the_job(configured: Configured, clock: str) -> None:
    """A timeout or a deadline of the client's stops waiting; it never sends DELETE (on vLLM-Omni, Unsloth and
    the local server a DELETE kills the render). Only an explicit cancel() does (the test above)."""
    handle = configured(speed=0.5)
    if clock == "deadline":
        sora_nb.configure(deadline=0.5)
    job = sora_nb.submit(f"a slow sunrise over the sea ({clock})")
    if clock == "result-timeout":
        with pytest.raises(TimeoutError):
            job.result(timeout=0.5)
    elif clock == "await-wait_for":

        async def impatient() -> None:
            await asyncio.wait_for(job, timeout=0.5)

        with pytest.raises(TimeoutError):
            asyncio.run(impatient())
    else:
        with pytest.raises(errors.DeadlineExceededError):
            job.result(timeout=30)
        sora_nb.configure(deadline=None)
    assert job.id is not None and handle.app.deletes[job.id] == 0
    finished = job if clock != "deadline" else sora_nb.submit(f"a slow sunrise over the sea ({clock})")
    assert finished.result(timeout=60).is_file()  # still running on the server, so waiting again gets the video
    assert handle.app.deletes[job.id] == 0 and len(handle.app.store.jobs()) == 1  # one create, never re-sent


def test_concurrency_limit_and_batched_status_requests(configured: Configured) -> None:
    handle = configured(speed=1.0)
    sora_nb.configure(max_concurrency=3)
    with peak_active(handle) as peak:
        batch = [sora_nb.submit(f"clip number {i}") for i in range(6)]
        paths = [job.result(timeout=120) for job in batch]
    assert len(set(paths)) == 6 and 1 <= peak[0] <= 3
    requests = engine_requests()
    assert requests["create"] == 6 and requests.get("list", 0) >= 1


def test_await_job_in_an_event_loop(configured: Configured) -> None:
    configured()

    async def main() -> Path:
        return await sora_nb.submit("awaited from asyncio")

    assert asyncio.run(main()).is_file()


def test_remix_extend_edit_jobs(configured: Configured, tmp_path: Path) -> None:
    configured()
    source = sora_nb.submit("a red kite")
    source.result(timeout=60)
    derived = [
        sora_nb.remix(source, "a blue kite"),
        sora_nb.extend(source, "the kite climbs", seconds=4),
        sora_nb.edit(source, "in black and white"),
    ]
    for job in derived:
        assert job.result(timeout=60).is_file()
    assert derived[0].video is not None and derived[0].video.remixed_from == source.id
    assert derived[1].video is not None and derived[1].video.seconds == "8"


@pytest.mark.parametrize("dialect", ["openai", "json-fields", "raw-token", "cdn-redirect", "new-api", "azure"])
def test_a_job_in_every_dialect(configured: Configured, dialect: str) -> None:
    handle = configured(dialect=dialect)
    job = sora_nb.submit(f"a {dialect} job", size="1280x720")
    path = job.result(timeout=60)
    assert path.read_bytes()[4:8] == b"ftyp" and job.thumbnail is not None
    assert sora_nb.submit(f"a {dialect} job", size="1280x720").result(timeout=10) == path
    assert len(handle.app.store.jobs()) == 1
    if dialect == "cdn-redirect":
        assert handle.app.cdn_rejected_headers == []


def test_a_job_survives_every_fault_at_once(configured: Configured) -> None:
    handle = configured(faults="5xx=0.3,429=0.2,retry_after=0,drop=0.5,seed=5")
    path = sora_nb.submit("a storm of faults").result(timeout=120)
    assert path.read_bytes()[4:8] == b"ftyp"
    assert path.stat().st_size == handle.app.store.asset(handle.app.store.jobs()[0], "video").stat().st_size
    wait_for_images()  # under these faults the thumbnail may still be on its way, as a .part
    assert len(handle.app.store.jobs()) == 1 and not list(path.parent.glob("*.part"))
