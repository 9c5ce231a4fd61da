"""AsyncVideosClient against the real local server in every dialect, over loopback: one method per endpoint."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from PIL import Image

from sora_nb import errors
from sora_nb.client import AsyncVideosClient
from sora_nb.server import ServerHandle
from tests.conftest import PROVIDER_FOR_DIALECT
from tests.helpers import until_done, videos_client_for


@pytest.mark.parametrize("dialect", list(PROVIDER_FOR_DIALECT))
def test_every_dialect_end_to_end(make_server: Callable[..., ServerHandle], tmp_path: Path, dialect: str) -> None:
    handle = make_server(dialect=dialect)

    async def scenario() -> None:
        async with videos_client_for(handle) as client:
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
        async with videos_client_for(handle) as client:
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


def test_new_api_ids_with_slashes_and_unknown_status(make_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    handle = make_server(dialect="new-api")

    async def scenario() -> None:
        async with videos_client_for(handle) as client:
            video = await client.create("relay")
            assert "/" in video.id and video.raw_status == "unknown" and video.status == "queued"
            done = await until_done(client, video.id)
            assert done.progress == 100
            await client.download(video.id, tmp_path / "v.mp4")
            with pytest.raises(errors.NotFoundError):
                await client.retrieve("task_nope")

    asyncio.run(scenario())


def test_repr_hides_the_key(make_server: Callable[..., ServerHandle]) -> None:
    client = AsyncVideosClient("http://127.0.0.1:1/v1", "distinctive-key-42")
    assert "distinctive-key-42" not in repr(client)
    asyncio.run(client.aclose())
