"""The wire under AsyncVideosClient: retries that never duplicate a create, errors mapped to SoraErrors, auth
headers only for the configured origin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sora_nb import errors
from sora_nb.client import AsyncVideosClient
from sora_nb.server import ServerHandle
from tests.helpers import until_done, videos_client_for


def test_retries_5xx_and_429_but_never_duplicates_a_create(
    make_server: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    handle = make_server(faults="5xx=0.4,429=0.3,retry_after=0,seed=11")

    async def scenario() -> None:
        async with videos_client_for(handle) as client:
            refused = 0
            while True:  # a create answered 429 created nothing and is not re-sent by the wire: the caller sends it
                try:
                    video = await client.create("a flaky gateway")
                    break
                except errors.EngineBusyError:
                    refused += 1
            assert client.requests["create"] == refused + 1
            assert (await until_done(client, video.id)).status == "completed"
            await client.download(video.id, tmp_path / "v.mp4")
            assert client.requests["retrieve"] > 1

    asyncio.run(scenario())
    assert len(handle.app.store.jobs()) == 1


def test_not_ready_expired_not_found_and_auth_errors(make_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    handle = make_server(faults="expire=1", speed=1.0)

    async def scenario() -> None:
        async with videos_client_for(handle) as client:
            video = await client.create("short lived")
            with pytest.raises(errors.NotReadyError):
                await client.download(video.id, tmp_path / "early.mp4")
            done = await until_done(client, video.id)
            await asyncio.sleep(max(0.0, done.expires_at - time.time()) + 1.1)
            with pytest.raises(errors.VideoExpiredError):
                await client.download(video.id, tmp_path / "late.mp4")
            with pytest.raises(errors.NotFoundError):
                await client.retrieve("video_missing")
        async with AsyncVideosClient(handle.base_url, "a-wrong-key-value") as wrong:
            with pytest.raises(errors.AuthenticationError) as denied:
                await wrong.retrieve(video.id)
            assert "a-wrong-key-value" not in str(denied.value)

    asyncio.run(scenario())


def test_unreachable_host_is_a_connect_error() -> None:
    async def scenario() -> None:
        async with AsyncVideosClient("http://127.0.0.1:9/v1", "k", max_retries=1) as client:
            with pytest.raises(errors.ConnectError, match="cannot reach"):
                await client.retrieve("video_x")

    asyncio.run(scenario())


def test_every_auth_header_is_dropped_on_a_cross_origin_redirect() -> None:
    """A redirect to another origin must not carry the key, whatever header holds it (the local server's
    cdn-redirect dialect covers Authorization; this covers api-key and custom headers it cannot produce)."""
    seen: dict[str, httpx.Headers] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers
        if request.url.host == "api.example":
            return httpx.Response(302, headers={"location": "https://cdn.example/file.mp4?sig=1"})
        return httpx.Response(200, content=b"\0\0\0\x18ftypmp42" + b"\0" * 100, headers={"content-type": "video/mp4"})

    async def scenario(provider: str, header: str | None) -> None:
        transport = httpx.MockTransport(handler)
        async with AsyncVideosClient(
            "https://api.example",
            "secret-key-1",
            provider=provider,
            auth_header=header,
            transport=transport,
            download_transport=transport,
        ) as client:
            await client.download("video_1", Path("/tmp") / f"redirect-{provider}.mp4")

    for provider, header, name in (
        ("openai", None, "authorization"),
        ("azure", None, "api-key"),
        ("openai", "X-Api-Key", "x-api-key"),
    ):
        seen.clear()
        asyncio.run(scenario(provider, header))
        assert seen["api.example"].get(name) is not None
        assert name not in seen["cdn.example"]
        assert "secret-key-1" not in str(dict(seen["cdn.example"]))
