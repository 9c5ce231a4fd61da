"""Synchronous engines: a create answered with the video itself (LocalAI's ``data[0].url`` / ``b64_json``,
vLLM-Omni's ``/v1/videos/sync`` MP4) is a completed job, cached and indexed under one ID, never polled."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import sora_nb
from sora_nb import engine as engines
from sora_nb import errors, jobs
from sora_nb.client import AsyncVideosClient
from sora_nb.server import ServerHandle
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from tests.helpers import mp4_boxes

Setup = Callable[..., ServerHandle]
# (server dialect, client profile, extra create fields): each way a synchronous engine answers
ANSWERS = [
    ("localai", "localai", {}),  # {id, created, data: [{url}]}
    ("localai", "localai", {"response_format": "b64_json"}),  # {id, created, data: [{b64_json}]}
    ("vllm-omni", "vllm-omni-sync", {}),  # the MP4 itself, its ID in X-Request-Id
]


def sync_engine(configured: Setup, dialect: str, profile: str, **options: Any) -> ServerHandle:
    handle = configured(dialect=dialect, **options)
    sora_nb.configure(provider=profile, model=DEFAULT_SERVED_MODEL)
    return handle


def sent() -> dict[str, int]:
    """The requests the current engine's client has sent, by operation."""
    assert engines._engine is not None
    return dict(engines._engine.client.requests)


@pytest.mark.parametrize(("dialect", "profile", "extra"), ANSWERS)
def test_a_synchronous_answer_is_a_completed_cached_job(
    configured: Setup, dialect: str, profile: str, extra: dict[str, Any]
) -> None:
    handle = sync_engine(configured, dialect, profile)
    job = jobs.submit("a lighthouse at dusk", steps=12, **extra)
    path = job.result(60)
    assert job.status == "completed" and not job.cached
    assert "moov" in mp4_boxes(path.read_bytes())
    assert path.read_bytes() == handle.app.store.asset(handle.app.store.jobs()[0], "video").read_bytes()
    assert not list(path.parent.glob("*.part"))
    (made,) = handle.app.store.jobs()
    assert job.id == made.id  # one ID: the engine's (X-Request-Id, or the answer's id)
    counts = sent()
    assert counts["create"] == 1 and "retrieve" not in counts and "list" not in counts
    assert counts.get("download", 0) == (1 if profile == "localai" and not extra else 0)  # only data[0].url
    assert job.thumbnail is not None and job.thumbnail.read_bytes()[8:12] == b"WEBP"  # its first frame, made here

    again = jobs.submit("a lighthouse at dusk", steps=12, **extra)
    assert again.result(30) == path and again.cached
    assert sent()["create"] == 1 and len(handle.app.store.jobs()) == 1  # a re-run costs nothing
    assert jobs.attach(made.id).result(30) == path
    (card,) = sora_nb.history().items
    assert card.cached is not None and card.cached.id == made.id and card.cached.request["steps"] == 12


def test_the_create_may_stay_open_for_the_whole_render(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="localai", speed=4.0)  # a render of about a second: longer than the idle timeout

    async def run() -> str:
        async with AsyncVideosClient(handle.base_url, handle.key, provider="localai", idle_timeout=0.2) as client:
            video = await client.create("a lighthouse", model=DEFAULT_SERVED_MODEL, seconds=4)
            return video.status

    assert asyncio.run(run()) == "completed"


def test_the_job_is_in_progress_while_the_create_is_open(configured: Setup) -> None:
    sync_engine(configured, "localai", "localai", speed=2.0)  # a render of about two seconds
    job = jobs.submit("a lighthouse at dusk")
    while job.status == "pending":
        time.sleep(0.01)
    assert (job.status, job.id) == ("in_progress", None)  # rendering: no ID before the answer
    job.result(60)
    assert job.id is not None


def test_a_failed_synchronous_render_is_the_engines_reason(configured: Setup) -> None:
    handle = sync_engine(configured, "localai", "localai")
    job = jobs.submit("moderation-test of a lighthouse")
    with pytest.raises(errors.GenerationFailedError) as failed:
        job.result(60)
    assert "HTTP 500: The prompt was blocked" in str(failed.value) and "render failed" in str(failed.value)
    assert "service may be down" not in str(failed.value) and len(handle.app.store.jobs()) == 1
    assert sent()["create"] == 1  # a 500 after sending is ambiguous: never re-sent


# ----- what the real server cannot be made to send: a bad or cut-off answer ----------------------------------------
def answered(handle: ServerHandle) -> bytes:
    """A real MP4 as the vLLM-Omni sync route answers it."""
    response = httpx.post(
        f"{handle.base_url}/videos/sync",
        data={"prompt": "a lighthouse"},
        headers={"Authorization": f"Bearer {handle.key}"},
        timeout=60,
    )
    response.raise_for_status()
    assert "moov" in mp4_boxes(response.content)
    return response.content


def create_with(
    profile: str, reply: Callable[[httpx.Request], httpx.Response], dest: Path, **fields: Any
) -> AsyncVideosClient:
    client = AsyncVideosClient("http://engine.test/v1", provider=profile, transport=httpx.MockTransport(reply))

    async def run() -> None:
        async with client:
            await client.create("a lighthouse", result_path=lambda _: dest, **fields)

    asyncio.run(run())
    return client


@pytest.mark.parametrize("damage", ["half", "short-of-length", "not-an-mp4"])
def test_a_bad_or_cut_off_mp4_answer_is_an_error_that_leaves_no_file(
    make_server: Callable[..., ServerHandle], tmp_path: Path, damage: str
) -> None:
    mp4 = answered(make_server(dialect="vllm-omni"))
    body, headers = {
        "half": (mp4[: len(mp4) // 2], {}),
        "short-of-length": (mp4[:-100], {"content-length": str(len(mp4))}),
        "not-an-mp4": (b"<html>Bad gateway</html>" * 10, {}),
    }[damage]

    def reply(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/videos/sync"
        response = httpx.Response(200, content=body, headers={"content-type": "video/mp4", "x-request-id": "v1"})
        response.headers.update(headers)
        return response

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(errors.DownloadError) as bad:
        create_with("vllm-omni-sync", reply, out / "video.mp4")
    assert "nothing was kept" in str(bad.value)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ({"b64_json": "not base64!"}, errors.ResponseFormatError),
        ({"b64_json": base64.b64encode(b"\0\0\0\x18ftypmp42 cut short").decode()}, errors.DownloadError),
        ({}, errors.ResponseFormatError),
    ],
)
def test_a_bad_b64_json_answer_leaves_no_file(tmp_path: Path, item: dict[str, str], error: type[Exception]) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["response_format"] == "b64_json"
        return httpx.Response(200, json={"id": "v1", "created": 1, "data": [item]})

    with pytest.raises(error):
        create_with("localai", reply, tmp_path / "video.mp4", response_format="b64_json")
    assert list(tmp_path.iterdir()) == []
