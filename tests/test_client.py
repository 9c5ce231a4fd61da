"""AsyncVideosClient against the real local server in every dialect and fault mode, over loopback."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from sora_nb import errors
from sora_nb.client import AsyncVideosClient
from sora_nb.server import ServerHandle
from sora_nb.transport import StdlibTransport
from tests.conftest import PROVIDER_FOR_DIALECT


class CountingTransport(httpx.BaseTransport):
    """The real download transport, counting the body bytes that arrive."""

    def __init__(self) -> None:
        self.inner = StdlibTransport()
        self.received = 0
        self.ranges: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.ranges.append(request.headers.get("range"))
        response = self.inner.handle_request(request)
        counter = self

        class Counted(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                for chunk in response.stream:  # type: ignore[union-attr]
                    counter.received += len(chunk)
                    yield chunk

            def close(self) -> None:
                response.close()

        return httpx.Response(
            response.status_code, headers=response.headers, stream=Counted(), extensions=response.extensions
        )

    def close(self) -> None:
        self.inner.close()


def client_for(handle: ServerHandle, **kwargs: Any) -> AsyncVideosClient:
    base = handle.url if handle.dialect == "azure" else handle.base_url
    kwargs.setdefault("provider", PROVIDER_FOR_DIALECT[handle.dialect])
    return AsyncVideosClient(base, handle.key, **kwargs)


async def until_done(client: AsyncVideosClient, video_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        video = await client.retrieve(video_id)
        if video.done:
            return video
        assert time.monotonic() < deadline, f"{video_id} still {video.raw_status}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("dialect", list(PROVIDER_FOR_DIALECT))
def test_every_dialect_end_to_end(make_server: Callable[..., ServerHandle], tmp_path: Path, dialect: str) -> None:
    handle = make_server(dialect=dialect)

    async def scenario() -> None:
        async with client_for(handle) as client:
            created = await client.create("a lantern on a jetty", size="1280x720", seconds=4)
            assert created.status in ("queued", "in_progress") and created.id
            assert created.size == "1280x720" and created.seconds == "4"
            done = await until_done(client, created.id)
            assert done.status == "completed" and done.progress == 100 and done.completed_at
            listed = [v.id async for v in client.list(limit=1)]
            assert created.id in listed
            path = await client.download(created.id, tmp_path / "v.mp4")
            with av.open(str(path)) as container:
                assert container.streams.video[0].codec_context.width == 1280
            for variant in ("thumbnail", "spritesheet"):
                image = await client.download(created.id, tmp_path / variant, variant=variant)  # type: ignore[arg-type]
                assert Image.open(image).size[0] > 0
            remix = await client.remix(created.id, "the lantern in fog")
            assert (await until_done(client, remix.id)).status == "completed"
            assert await client.delete(remix.id)
            with pytest.raises(errors.NotFoundError):
                await client.retrieve(remix.id)
            assert client.requests["create"] == 1 and client.requests["remix"] == 1

    asyncio.run(scenario())
    assert len(handle.app.store.jobs()) == 1
    if dialect == "cdn-redirect":
        assert handle.app.cdn_rejected_headers == []


def test_edit_extend_image_and_characters(make_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    handle = make_server()
    png = io.BytesIO()
    Image.new("RGB", (720, 1280), (200, 80, 40)).save(png, "PNG")

    async def scenario() -> None:
        async with client_for(handle) as client:
            from_image = await client.create("a slow zoom", image=png.getvalue())
            source = await until_done(client, from_image.id)
            assert source.status == "completed"
            clip = await client.download(source.id, tmp_path / "source.mp4")
            edited = await client.edit(source.id, "as a pencil drawing")
            extended = await client.extend(source.id, "it keeps going", seconds=4)
            uploaded = await client.edit(clip, "edited from an upload")
            for job in (edited, extended, uploaded):
                assert (await until_done(client, job.id)).status == "completed"
            assert (await client.retrieve(extended.id)).seconds == "8"
            character = await client.create_character("Ember", clip)
            assert (await client.get_character(character["id"]))["name"] == "Ember"

    asyncio.run(scenario())


def test_auto_falls_back_to_json_once(
    make_server: Callable[..., ServerHandle], caplog: pytest.LogCaptureFixture
) -> None:
    handle = make_server(dialect="json-fields")

    async def scenario() -> None:
        async with AsyncVideosClient(handle.base_url, handle.key, provider="auto") as client:
            video = await client.create("json only gateway")
            assert video.raw_status in ("pending", "processing")  # the JSON dialect's words; which depends on timing
            assert client.requests["create"] == 2

    asyncio.run(scenario())
    assert "sending it once more as JSON" in caplog.text
    assert len(handle.app.store.jobs()) == 1


def test_retries_5xx_and_429_but_never_duplicates_a_create(
    make_server: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    handle = make_server(faults="5xx=0.4,429=0.3,retry_after=0,seed=11")

    async def scenario() -> None:
        async with client_for(handle) as client:
            video = await client.create("a flaky gateway")
            assert (await until_done(client, video.id)).status == "completed"
            await client.download(video.id, tmp_path / "v.mp4")
            assert client.requests["retrieve"] > 1

    asyncio.run(scenario())
    assert len(handle.app.store.jobs()) == 1


def test_dropped_download_resumes_without_refetching(make_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    handle = make_server(faults="drop=0.5")
    transport = CountingTransport()

    async def scenario() -> int:
        async with client_for(handle, download_transport=transport) as client:
            video = await until_done(client, (await client.create("cut halfway")).id)
            transport.received = 0
            path = await client.download(video.id, tmp_path / "v.mp4")
            return path.stat().st_size

    size = asyncio.run(scenario())
    assert transport.received == size
    assert transport.ranges == [None, f"bytes={size // 2}-"]
    assert not (tmp_path / "v.mp4.part").exists()


def test_stalled_download_resumes_after_the_idle_timeout(
    make_server: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    handle = make_server(faults="stall=5")

    async def scenario() -> float:
        async with client_for(handle, idle_timeout=0.5) as client:
            video = await until_done(client, (await client.create("stalls halfway")).id)
            started = time.monotonic()
            await client.download(video.id, tmp_path / "v.mp4")
            assert client.requests["download"] == 2
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 4.0
    assert (tmp_path / "v.mp4").read_bytes()[4:8] == b"ftyp"


def test_json_labelled_as_mp4_is_not_taken_for_a_video(
    make_server: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    handle = make_server(faults="json200", speed=1.0)

    async def scenario() -> None:
        async with client_for(handle) as client:
            video = await client.create("not ready yet")
            with pytest.raises(errors.NotReadyError, match="JSON record"):
                await client.download(video.id, tmp_path / "v.mp4")
            assert not (tmp_path / "v.mp4").exists() and not (tmp_path / "v.mp4.part").exists()
            await until_done(client, video.id)
            await client.download(video.id, tmp_path / "v.mp4")

    asyncio.run(scenario())


def test_not_ready_expired_not_found_and_auth_errors(make_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    handle = make_server(faults="expire=1", speed=1.0)

    async def scenario() -> None:
        async with client_for(handle) as client:
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


def test_new_api_ids_with_slashes_and_unknown_status(make_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    handle = make_server(dialect="new-api")

    async def scenario() -> None:
        async with client_for(handle) as client:
            video = await client.create("relay")
            assert "/" in video.id and video.raw_status == "unknown" and video.status == "queued"
            done = await until_done(client, video.id)
            assert done.progress == 100
            await client.download(video.id, tmp_path / "v.mp4")
            with pytest.raises(errors.NotFoundError):
                await client.retrieve("task_nope")

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


def test_repr_hides_the_key(make_server: Callable[..., ServerHandle]) -> None:
    client = AsyncVideosClient("http://127.0.0.1:1/v1", "distinctive-key-42")
    assert "distinctive-key-42" not in repr(client)
    asyncio.run(client.aclose())
