"""Status requests over loopback to the real local server: none goes before it is due (a poll hint is a floor),
requests due together share one list request, and a cancelled job's request is never sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

import sora_nb
from sora_nb import jobs
from sora_nb.client import AsyncVideosClient
from sora_nb.jobs import BatchPoller
from sora_nb.runner import get_runner
from sora_nb.server import ServerHandle


class Recording(httpx.AsyncBaseTransport):
    """Real HTTP through httpx's own transport, noting when each request went out and its answer came back."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.log: list[tuple[float, float, httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = await self.inner.handle_async_request(request)
        self.log.append((sent, time.monotonic(), request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _videos(client: AsyncVideosClient, n: int) -> list[str]:
    return [(await client.create(f"poller test clip {i}")).id for i in range(n)]


def test_a_request_waits_until_it_is_due(server: ServerHandle) -> None:
    async def main() -> None:
        recording = Recording()
        async with AsyncVideosClient(server.base_url, server.key, transport=recording) as client:
            (video_id,) = await _videos(client, 1)
            poller = BatchPoller(client)
            due = time.monotonic() + 0.4
            asked = asyncio.ensure_future(poller.status(video_id, due))
            await asyncio.sleep(0.2)
            assert client.requests["retrieve"] == 0  # not yet due
            video, moment = await asked
            assert video.id == video_id and client.requests["retrieve"] == 1
            sent, _, request, _ = recording.log[-1]
            assert request.method == "GET" and sent >= due and moment >= due

    asyncio.run(main())


@pytest.mark.parametrize(
    ("spacing", "lists", "retrieves"),
    [(0.02, 1, 0), (0.2, 0, 3)],
    ids=["due-together-share-one-list-request", "due-apart-go-separately"],
)
def test_requests_go_together_only_when_due_together(
    server: ServerHandle, spacing: float, lists: int, retrieves: int
) -> None:
    async def main() -> None:
        recording = Recording()
        async with AsyncVideosClient(server.base_url, server.key, transport=recording) as client:
            ids = await _videos(client, 3)
            poller = BatchPoller(client, window=0.05)
            start = time.monotonic() + 0.1
            dues = [start + i * spacing for i in range(3)]
            readings = await asyncio.gather(*(poller.status(i, d) for i, d in zip(ids, dues, strict=True)))
            assert [video.id for video, _ in readings] == ids
            assert client.requests["list"] == lists and client.requests["retrieve"] == retrieves
            sends = sorted(sent for sent, _, request, _ in recording.log if request.method == "GET")
            if lists:  # one request, at the latest due time, at most a window after the earliest (+ loop slack)
                assert len(sends) == 1 and sends[0] >= max(dues) and sends[0] - min(dues) < 0.05 + 0.1
            else:  # nobody asked before its time
                assert all(sent >= due for sent, due in zip(sends, dues, strict=True))

    asyncio.run(main())


def test_a_cancelled_wait_sends_nothing(server: ServerHandle) -> None:
    async def main() -> None:
        async with AsyncVideosClient(server.base_url, server.key) as client:
            (video_id,) = await _videos(client, 1)
            poller = BatchPoller(client)
            asked = asyncio.ensure_future(poller.status(video_id, time.monotonic() + 0.2))
            await asyncio.sleep(0.05)
            asked.cancel()
            await asyncio.sleep(0.4)
            assert asked.cancelled() and client.requests["retrieve"] == 0 and client.requests["list"] == 0

    asyncio.run(main())


def test_a_job_never_polls_sooner_than_the_servers_hint(configured: Callable[..., ServerHandle]) -> None:
    configured(speed=1.0)  # a 4 s clip in about 3.5 s, with openai-poll-after-ms on every unfinished answer
    engine = get_runner().submit(jobs.get_engine()).result()
    exchanges: list[tuple[str, float, float | None]] = []  # (kind, time, hint in s)

    async def on_request(request: httpx.Request) -> None:
        if request.method == "GET" and not request.url.path.endswith("/content"):
            exchanges.append(("ask", time.monotonic(), None))

    async def on_response(response: httpx.Response) -> None:
        hint = response.headers.get("openai-poll-after-ms")
        exchanges.append(("answer", time.monotonic(), None if hint is None else int(hint) / 1000))

    engine.client._http.event_hooks = {"request": [on_request], "response": [on_response]}
    sora_nb.submit("a kite over dunes", seconds=4).result(timeout=60)
    asks = 0
    floor_until = 0.0
    for kind, moment, hint in exchanges:
        if kind == "ask":
            asks += 1
            assert moment >= floor_until, f"status request {moment - floor_until:.3f} s before the hint allowed"
        elif hint is not None:
            floor_until = moment + hint
    assert asks >= 2  # the job was polled while running, not only seen done
