"""Downloads over loopback from the real local server: resumed after a drop or a stall, never a JSON body kept
as a video."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sora_nb import errors
from sora_nb.server import ServerHandle
from sora_nb.transport import StdlibTransport
from tests.helpers import until_done, videos_client_for


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


def test_dropped_download_resumes_without_refetching(make_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    handle = make_server(faults="drop=0.5")
    transport = CountingTransport()

    async def scenario() -> int:
        async with videos_client_for(handle, download_transport=transport) as client:
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
        async with videos_client_for(handle, idle_timeout=0.5) as client:
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
        async with videos_client_for(handle) as client:
            video = await client.create("not ready yet")
            with pytest.raises(errors.NotReadyError, match="JSON record"):
                await client.download(video.id, tmp_path / "v.mp4")
            assert not (tmp_path / "v.mp4").exists() and not (tmp_path / "v.mp4.part").exists()
            await until_done(client, video.id)
            await client.download(video.id, tmp_path / "v.mp4")

    asyncio.run(scenario())
