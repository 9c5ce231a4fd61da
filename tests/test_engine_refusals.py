"""A busy engine's refusal queues the job (issue 14 item 3), and an error status carrying a video record is that
record (item 4): against the local server playing Aquiles (503, one job at a time), Unsloth (409 busy), oMLX
(503 queue_full, four at a time) and vLLM-Omni (a failed job's retrieve is HTTP 500 with the job as body)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import sora_nb
from sora_nb import engine as engines
from sora_nb import errors
from sora_nb.client import AsyncVideosClient
from sora_nb.costs import Budget
from sora_nb.engine import Engine
from sora_nb.jobs import Job
from sora_nb.server import ServerHandle
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from sora_nb.video import Video
from sora_nb.wire import is_refusal
from tests.helpers import client_for, wait_for_images

Configured = Callable[..., ServerHandle]


def current_engine() -> Engine:
    assert engines._engine is not None
    return engines._engine


def one_after_another(handle: ServerHandle) -> bool:
    """Whether the server ran its jobs one at a time: each created once the one before had ended."""
    store = handle.app.store
    jobs = store.jobs()
    ends = [store.state(job).completed_at for job in jobs]
    return all(end is not None and later.created_at >= end for end, later in zip(ends, jobs[1:], strict=False))


def notes_of(jobs: list[Job]) -> list[tuple[str, str]]:
    """(status, note) of every change of the jobs that carries a note, from now on."""
    seen: list[tuple[str, str]] = []
    for job in jobs:
        job.observe(lambda j: seen.append((j.status, j.note)) if j.note else None)
    return seen


@pytest.mark.parametrize("dialect", ["aquiles", "unsloth"])
def test_jobs_against_a_one_at_a_time_engine_all_complete_one_after_another(
    configured: Configured, dialect: str
) -> None:
    handle = configured(dialect=dialect, speed=4.0)
    sora_nb.configure(max_concurrency=4)
    jobs = [sora_nb.submit(f"{dialect} clip {i}: a lighthouse at dusk") for i in range(5)]
    seen = notes_of(jobs)
    paths = [job.result(timeout=180) for job in jobs]
    assert all(p.read_bytes()[4:8] == b"ftyp" for p in paths) and len(set(paths)) == 5
    assert {job.status for job in jobs} == {"completed"} and all(job.note is None for job in jobs)
    accepted = handle.app.store.jobs()
    assert len(accepted) == 5 and {j.id for j in accepted} == {job.id for job in jobs}  # one create each
    engine = current_engine()
    refused = engine.client.requests["create"] - len(accepted)
    assert refused == engine.admission.refused and 1 <= refused <= 3  # only the first burst of the 4 slots
    assert engine.admission.capacity == 1 and engine.admission.running == 0
    assert one_after_another(handle)
    assert ("queued", f"waiting: the engine at {engine.client.wire.server} runs 1 job at a time") in seen
    wait_for_images()


def test_a_sweep_against_aquiles_finishes_every_job(configured: Configured) -> None:
    handle = configured(dialect="aquiles", speed=4.0)
    gallery = sora_nb.sweep(["a fox in snow", "an owl at night", "a heron over a lake"], seconds=4)
    paths = gallery.wait(timeout=180)
    assert all(p is not None and p.read_bytes()[4:8] == b"ftyp" for p in paths)
    assert len(handle.app.store.jobs()) == 3 and one_after_another(handle)
    assert current_engine().client.requests["create"] - 3 <= 2
    wait_for_images()


def test_omlx_queue_full_learns_its_four_places(configured: Configured) -> None:
    handle = configured(dialect="omlx", speed=4.0)
    sora_nb.configure(max_concurrency=8)
    jobs = [sora_nb.submit(f"omlx clip {i}: rain on a window", model=DEFAULT_SERVED_MODEL) for i in range(6)]
    assert {job.result(timeout=180).read_bytes()[4:8] for job in jobs} == {b"ftyp"}
    assert len(handle.app.store.jobs()) == 6
    engine = current_engine()
    assert engine.admission.capacity == 4 and 1 <= engine.admission.refused <= 2
    assert engine.client.requests["create"] == 6 + engine.admission.refused
    wait_for_images()


def test_the_direct_client_raises_engine_busy_at_once_with_the_engines_words(
    make_server: Callable[..., ServerHandle],
) -> None:
    aquiles = make_server(dialect="aquiles", speed=0.5)
    unsloth = make_server(dialect="unsloth", speed=0.5)
    capped = make_server(speed=0.5, max_active=1)

    async def scenario(handle: ServerHandle, provider: str) -> errors.EngineBusyError:
        async with AsyncVideosClient(handle.base_url, handle.key, provider=provider) as client:
            await client.create("the one that runs")
            with pytest.raises(errors.EngineBusyError) as refused:
                await client.create("the one refused")
            assert client.requests["create"] == 2  # not re-sent inside the wire
        assert len(handle.app.store.jobs()) == 1
        return refused.value

    busy = asyncio.run(scenario(aquiles, "aquiles"))
    assert busy.status == 503 and isinstance(busy, errors.RateLimitError)
    assert "The limit of 1 concurrent tasks has been reached" in busy.message and "detail" not in busy.message
    assert "Nothing was created" in str(busy)
    busy = asyncio.run(scenario(unsloth, "unsloth"))
    assert busy.status == 409 and busy.code == "busy"
    busy = asyncio.run(scenario(capped, "openai"))
    assert busy.status == 429 and busy.retry_after is not None and busy.retry_after >= 1


@pytest.mark.parametrize(
    ("status", "code", "message", "refusal"),
    [
        (503, None, "The limit of 1 concurrent tasks has been reached. Please try again later.", True),
        (409, "busy", "A video is already being generated", True),
        (503, "queue_full", "The video queue is full (4 jobs)", True),
        (429, "rate_limit_exceeded", "Rate limit reached for requests", True),
        (429, "insufficient_quota", "You exceeded your current quota", False),
        (503, None, "Video delivery is unavailable: configure an output path or enable cloud storage", False),
        (503, None, "Model 'flux' does not generate videos.", False),
        (503, None, "no model loaded", False),
        (500, "busy", "busy", False),
        (502, None, "Bad Gateway", False),
        (409, "video_not_ready", "Video is not ready yet", False),
    ],
)
def test_only_a_capacity_answer_is_a_refusal(status: int, code: str | None, message: str, refusal: bool) -> None:
    assert is_refusal(status, code, message) is refusal


def test_an_ambiguous_create_answer_is_never_sent_again() -> None:
    """A 503 that does not say busy (the real server cannot answer a create so) may have created a job."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(503, json={"detail": "Video delivery is unavailable"})

    async def scenario() -> None:
        transport = httpx.MockTransport(handler)
        async with AsyncVideosClient("http://engine.test/v1", None, provider="sglang", transport=transport) as client:
            with pytest.raises(errors.ServerError, match="HTTP 503: Video delivery is unavailable") as caught:
                await client.create("a clip")
            assert not isinstance(caught.value, errors.EngineBusyError)

    asyncio.run(scenario())
    assert sent == ["POST"]


def test_fastapi_detail_bodies_give_their_text() -> None:
    async def scenario() -> None:
        async with AsyncVideosClient("http://engine.test/v1", None, provider="sglang") as client:
            request = httpx.Request("GET", "http://engine.test/v1/videos")
            plain = client.wire.error(httpx.Response(400, json={"detail": "Invalid request body"}, request=request))
            assert plain.message == "GET /v1/videos: HTTP 400: Invalid request body"
            listed = {"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 100"}]}
            wrong = client.wire.error(httpx.Response(422, json=listed, request=request))
            assert wrong.message.endswith("HTTP 422: query.limit: Input should be less than or equal to 100")

    asyncio.run(scenario())


def test_waiting_past_the_deadline_creates_nothing_and_refunds(configured: Configured, tmp_path: Path) -> None:
    handle = configured(dialect="aquiles", speed=0.3)
    sora_nb.configure(deadline=2.0, budget_usd=100.0, prices={"sora-2": 0.1})
    with httpx.Client(base_url=handle.base_url, headers={"Authorization": "Bearer someone"}) as other:
        assert other.post("/videos", json={"prompt": "someone else's long render"}).status_code == 200
    job = sora_nb.submit("mine waits for the engine", model="sora-2", seconds=4)
    seen = notes_of([job])
    while not seen and not job.done:
        time.sleep(0.01)
    assert Budget(tmp_path / "cache").spent == pytest.approx(0.4)  # held while the job waits for the engine
    with pytest.raises(errors.DeadlineExceededError) as caught:
        job.result(timeout=60)
    assert caught.value.code == "not_created" and "nothing was created" in caught.value.message
    assert "Nothing was created or charged" in str(caught.value) and "attach" not in str(caught.value)
    assert job.status == "failed" and job.id is None and len(handle.app.store.jobs()) == 1
    assert any(status == "queued" and "is busy" in note for status, note in seen)
    assert Budget(tmp_path / "cache").spent == 0.0
    assert current_engine().admission.refused >= 1


def test_cancelling_a_waiting_job_sends_nothing_more_and_refunds(configured: Configured, tmp_path: Path) -> None:
    handle = configured(dialect="unsloth", speed=0.3)
    sora_nb.configure(budget_usd=100.0, prices={"sora-2": 0.1})
    with httpx.Client(base_url=handle.base_url, headers={"Authorization": f"Bearer {handle.key}"}) as other:
        assert other.post("/videos", json={"prompt": "someone else's long render"}).status_code == 200
    job = sora_nb.submit("mine is cancelled while it waits", model="sora-2", seconds=4)
    seen = notes_of([job])
    while not seen and not job.done:
        time.sleep(0.01)
    assert job.status == "queued" and job.note is not None and "is busy" in job.note
    job.cancel()
    with pytest.raises(errors.JobCancelledError):
        job.result(timeout=30)
    until = time.monotonic() + 30
    while job.status != "cancelled" and time.monotonic() < until:  # the runner winds the job down after cancel()
        time.sleep(0.01)
    assert job.status == "cancelled" and job.id is None
    assert len(handle.app.store.jobs()) == 1 and sum(handle.app.deletes.values()) == 0
    assert Budget(tmp_path / "cache").spent == 0.0


def test_a_failed_job_on_vllm_omni_fails_within_one_poll(configured: Configured) -> None:
    configured(dialect="vllm-omni", speed=4.0)
    job = sora_nb.submit("a moderation-test clip of a harbour")
    answers: list[Video] = []  # each record the job took in: the create's answer, then one per poll

    def took(j: Job) -> None:
        if j.video is not None and all(j.video is not seen for seen in answers):
            answers.append(j.video)

    job.observe(took)
    with pytest.raises(errors.GenerationFailedError) as caught:
        job.result(timeout=60)
    assert caught.value.code == "moderation_blocked" and "moderation-test" in caught.value.message
    assert answers[-1].status == "failed" and all(v.status != "failed" for v in answers[:-1])
    # every status request was answered once (the first record may be the create's answer, if seen in time):
    # the HTTP 500 carrying the failed job was not retried, nor polled again
    assert len(answers) - 1 <= current_engine().client.requests["retrieve"] <= len(answers)


def test_the_client_reads_a_failed_record_from_an_http_500(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="vllm-omni", speed=4.0)

    async def call(method: str, *args: str) -> tuple[Video, int]:
        async with AsyncVideosClient(handle.base_url, handle.key, provider="vllm-omni") as client:
            video: Video = await getattr(client, method)(*args)
            return video, client.requests["retrieve"]

    created, _ = asyncio.run(call("create", "a moderation-test clip"))
    job = handle.app.store.get(created.id)
    assert job is not None
    while handle.app.store.state(job).status != "failed":
        time.sleep(0.05)
    with client_for(handle) as raw:
        answer = raw.get(f"/videos/{created.id}")
        assert answer.status_code == 500 and answer.json()["status"] == "failed"
    video, retrieves = asyncio.run(call("retrieve", created.id))
    assert retrieves == 1 and video.status == "failed"
    assert video.error is not None and "moderation-test" in video.error.message
