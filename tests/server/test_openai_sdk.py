"""The official openai SDK as a conformance client of the local server."""

from __future__ import annotations

import io
from pathlib import Path

import av
import openai
import pytest
from PIL import Image

from sora_nb.server import ServerHandle
from tests.helpers import mp4_boxes


@pytest.fixture(scope="module")
def sdk(server: ServerHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)


@pytest.fixture(scope="module")
def finished(sdk: openai.OpenAI) -> openai.types.Video:
    video = sdk.videos.create_and_poll(prompt="a red fox running through snow", size="1280x720", seconds="4")
    assert video.status == "completed", video.error
    return video


def download(sdk: openai.OpenAI, video_id: str, variant: str, tmp_path: Path) -> bytes:
    target = tmp_path / variant
    with sdk.videos.with_streaming_response.download_content(video_id, variant=variant) as response:  # type: ignore[arg-type]
        assert response.status_code == 200
        response.stream_to_file(target)
    return target.read_bytes()


def test_create_and_poll_reports_the_request(finished: openai.types.Video) -> None:
    assert finished.id.startswith("video_")
    assert (finished.model, finished.size, finished.seconds) == ("sora-2", "1280x720", "4")
    assert finished.progress == 100
    assert finished.prompt == "a red fox running through snow"
    assert finished.completed_at is not None and finished.completed_at >= finished.created_at
    assert finished.expires_at is not None and finished.expires_at > finished.completed_at


def test_download_video_is_h264_aac_mp4(sdk: openai.OpenAI, finished: openai.types.Video, tmp_path: Path) -> None:
    data = download(sdk, finished.id, "video", tmp_path)
    boxes = mp4_boxes(data)
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat")
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert video.codec_context.pix_fmt == "yuv420p"
        assert container.duration is not None
        assert abs(container.duration / av.time_base - 4.0) <= 1 / 24
        assert video.frames == 96


def test_download_thumbnail_and_spritesheet(sdk: openai.OpenAI, finished: openai.types.Video, tmp_path: Path) -> None:
    thumb = Image.open(io.BytesIO(download(sdk, finished.id, "thumbnail", tmp_path)))
    assert thumb.format == "WEBP" and thumb.size == (1280, 720)
    sheet = Image.open(io.BytesIO(download(sdk, finished.id, "spritesheet", tmp_path)))
    assert sheet.format == "JPEG" and sheet.width > sheet.height > 0


def test_retrieve_matches(sdk: openai.OpenAI, finished: openai.types.Video) -> None:
    again = sdk.videos.retrieve(finished.id)
    assert again.model_dump() == finished.model_dump()


def test_list_paginates_through_every_video(sdk: openai.OpenAI, finished: openai.types.Video) -> None:
    made = [sdk.videos.create(prompt=f"paging test clip {i}").id for i in range(5)]
    seen = [video.id for video in sdk.videos.list(limit=2)]
    assert set(made) | {finished.id} <= set(seen)
    assert len(seen) == len(set(seen))
    first = sdk.videos.list(limit=2)
    assert len(first.data) == 2 and first.has_more is True and first.last_id == first.data[-1].id
    assert sdk.videos.list(limit=3, order="asc").data[0].id != first.data[0].id


def test_remix_then_delete(sdk: openai.OpenAI, finished: openai.types.Video) -> None:
    remix = sdk.videos.remix(finished.id, prompt="the same fox, now at night under the aurora")
    assert remix.remixed_from_video_id == finished.id
    assert remix.status in ("queued", "in_progress")
    done = sdk.videos.poll(remix.id)
    assert done.status == "completed" and (done.size, done.seconds) == (finished.size, finished.seconds)
    deleted = sdk.videos.delete(remix.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (remix.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve(remix.id)


def test_extend_and_edit(sdk: openai.OpenAI, finished: openai.types.Video, tmp_path: Path) -> None:
    # The SDK sends edits/extensions as multipart and cannot encode a {"id"} reference there (it takes the dict
    # for a file), so the reference form goes as JSON through the SDK's generic post, the upload form as multipart.
    clip = download(sdk, finished.id, "video", tmp_path)
    extended = sdk.videos.extend(video=("fox.mp4", clip, "video/mp4"), prompt="the fox leaps a creek", seconds="4")
    edited = sdk.post(
        "/videos/edits",
        body={"video": {"id": finished.id}, "prompt": "make it a watercolour painting"},
        cast_to=openai.types.Video,
    )
    extended, edited = sdk.videos.poll(extended.id), sdk.videos.poll(edited.id)
    assert extended.status == "completed" and extended.seconds == "8"
    assert edited.status == "completed" and edited.seconds == "4" and edited.size == "1280x720"


def test_image_input_and_characters(sdk: openai.OpenAI, finished: openai.types.Video, tmp_path: Path) -> None:
    image = io.BytesIO()
    Image.new("RGB", (720, 1280), (30, 120, 200)).save(image, "PNG")
    video = sdk.videos.create_and_poll(
        prompt="a slow zoom over the sea", input_reference=("sea.png", image.getvalue(), "image/png")
    )
    assert video.status == "completed"
    clip = download(sdk, finished.id, "video", tmp_path)
    character = sdk.videos.create_character(name="Fox", video=("fox.mp4", clip, "video/mp4"))
    assert character.name == "Fox" and character.id
    assert sdk.videos.get_character(character.id).name == "Fox"


def test_errors_are_sdk_exceptions(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.videos.create(prompt="x", model="sora-3")  # type: ignore[arg-type]
    assert "sora-2-pro" in str(bad.value)
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve("video_does_not_exist")
    wrong = openai.OpenAI(base_url=sdk.base_url, api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong.videos.list()
    assert "wrong-key" not in str(denied.value)
