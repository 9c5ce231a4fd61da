"""Provider profiles: reference images, auth headers, base URLs, JSON vs multipart bodies, create fields."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sora_nb.errors import InvalidRequestError
from sora_nb.providers import PROVIDERS, ImageInput, Provider, create_fields, encode, get_provider, load_image

KEY = "sk-test-provider-key"


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 90)).save(buffer, format=fmt)
    return buffer.getvalue()


FORMATS = [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpeg"), ("WEBP", "image/webp", "webp")]


# ----- load_image ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "mime", "suffix"), FORMATS)
def test_load_image_from_bytes(fmt: str, mime: str, suffix: str) -> None:
    data = image_bytes(fmt)
    image = load_image(data)
    assert image.data == data
    assert image.url is None
    assert image.mime == mime
    assert image.filename == f"image.{suffix}"
    assert image.as_url() == f"data:{mime};base64," + base64.b64encode(data).decode()
    with Image.open(io.BytesIO(base64.b64decode(image.as_url().split(",", 1)[1]))) as decoded:
        assert decoded.size == (8, 6)


@pytest.mark.parametrize(("fmt", "mime", "suffix"), FORMATS)
def test_load_image_from_file(tmp_path: Path, fmt: str, mime: str, suffix: str) -> None:
    path = tmp_path / f"ref.{suffix}"
    path.write_bytes(image_bytes(fmt))
    for given in (path, str(path)):
        image = load_image(given)
        assert image.data == path.read_bytes()
        assert image.mime == mime
        assert image.filename == f"ref.{suffix}"


def test_load_image_sniffs_content_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "actually-a-jpeg.png"
    path.write_bytes(image_bytes("JPEG"))
    assert load_image(path).mime == "image/jpeg"


def test_image_digest_identifies_content(tmp_path: Path) -> None:
    png, jpeg = image_bytes("PNG"), image_bytes("JPEG")
    path = tmp_path / "a.png"
    path.write_bytes(png)
    assert load_image(png).digest == load_image(path).digest
    assert load_image(png).digest != load_image(jpeg).digest
    assert load_image("https://x.example/a.png").digest != load_image("https://x.example/b.png").digest


@pytest.mark.parametrize(
    "url", ["https://cdn.example/ref.png?sig=abc", "http://cdn.example/ref.jpg", "data:image/png;base64,iVBORw0KGgo="]
)
def test_urls_pass_through(url: str) -> None:
    image = load_image(url)
    assert image.url == url
    assert image.data is None
    assert image.as_url() == url


def test_missing_file_is_an_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist") as caught:
        load_image(tmp_path / "nope.png")
    assert caught.value.param == "image"
    with pytest.raises(InvalidRequestError) as caught:
        load_image(str(tmp_path))  # a directory is not an image file
    assert caught.value.param == "image"


@pytest.mark.parametrize(
    "content", [b"", b"hello, not an image", b"GIF89a\x01\x00\x01\x00", b"RIFF\x00\x00\x00\x00WAVEfmt "]
)
def test_non_image_is_an_invalid_request(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(InvalidRequestError, match="PNG, JPEG or WEBP") as caught:
        load_image(content)
    assert caught.value.param == "image"
    path = tmp_path / "notes.png"
    path.write_bytes(content)
    with pytest.raises(InvalidRequestError, match=r"notes\.png") as caught:
        load_image(path)
    assert caught.value.param == "image"


# ----- auth and base URL --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("openai", {"Authorization": f"Bearer {KEY}"}),
        ("json-fields", {"Authorization": f"Bearer {KEY}"}),
        ("raw-token", {"Authorization": KEY}),
        ("azure", {"api-key": KEY}),
    ],
)
def test_auth_headers(name: str, headers: dict[str, str]) -> None:
    provider = get_provider(name)
    assert provider.auth_headers(KEY) == headers
    assert provider.auth_headers(None) == {}
    assert provider.auth_headers("") == {}


@pytest.mark.parametrize(
    ("name", "url", "expected"),
    [
        ("openai", "https://h.example", "https://h.example/v1"),
        ("openai", "https://h.example/", "https://h.example/v1"),
        ("openai", "https://h.example/v1", "https://h.example/v1"),
        ("openai", "https://h.example/v1/", "https://h.example/v1"),
        ("openai", "https://h.example/relay", "https://h.example/relay/v1"),
        ("azure", "https://r.openai.azure.com", "https://r.openai.azure.com/openai/v1"),
        ("azure", "https://r.openai.azure.com/openai/v1", "https://r.openai.azure.com/openai/v1"),
    ],
)
def test_base_url_adds_the_prefix_once(name: str, url: str, expected: str) -> None:
    provider = get_provider(name)
    assert provider.base_url(url) == expected
    assert provider.base_url(provider.base_url(url)) == expected


def test_get_provider() -> None:
    assert get_provider("azure").needs_api_version is True
    assert set(PROVIDERS) >= {"openai", "json-fields", "raw-token", "azure", "new-api", "auto"}
    with pytest.raises(ValueError, match="openai"):
        get_provider("Azure")


# ----- encode -------------------------------------------------------------------------------------------------
def test_encode_json_drops_none_and_keeps_structure() -> None:
    fields = {"prompt": "a cat", "model": None, "seed": 7, "input_reference": {"image_url": "https://x/a.png"}}
    body = encode(fields, multipart=False)
    assert body.multipart is False
    assert body.json == {"prompt": "a cat", "seed": 7, "input_reference": {"image_url": "https://x/a.png"}}
    assert body.data == {}
    assert body.files == {}


def test_encode_json_refuses_files() -> None:
    with pytest.raises(InvalidRequestError, match="multipart"):
        encode({"prompt": "p"}, multipart=False, files={"input_reference": load_image(image_bytes("PNG"))})


def test_encode_multipart_flattens_fields() -> None:
    fields: dict[str, Any] = {
        "prompt": "a cat",
        "model": None,
        "seconds": 4,
        "input_reference": {"image_url": "https://x/a.png"},
        "characters": [{"id": "char_1"}, {"id": "char_2", "weight": 0.5}],
        "tags": ["a", "b"],
    }
    body = encode(fields, multipart=True)
    assert body.multipart is True
    assert body.json is None
    assert body.data == {
        "prompt": "a cat",
        "seconds": "4",
        "input_reference[image_url]": "https://x/a.png",
        "characters[][id]": ["char_1", "char_2"],
        "characters[][weight]": "0.5",
        "tags[]": ["a", "b"],
    }


def test_encode_multipart_files(tmp_path: Path) -> None:
    png = image_bytes("PNG")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    body = encode({"prompt": "p"}, multipart=True, files={"input_reference": load_image(png), "video": clip})
    assert body.files == {
        "input_reference": ("image.png", png, "image/png"),
        "video": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
    }
    assert body.data == {"prompt": "p"}


# ----- create_fields ------------------------------------------------------------------------------------------
def fields_for(
    provider: Provider, *, multipart: bool = False, **overrides: Any
) -> tuple[dict[str, Any], dict[str, ImageInput]]:
    arguments: dict[str, Any] = {
        "prompt": "a cat",
        "model": "sora-2",
        "size": "1280x720",
        "seconds": 8,
        "seed": None,
        "image": None,
        "extra": {},
    }
    arguments.update(overrides)
    return create_fields(provider, multipart=multipart, **arguments)


def test_openai_fields() -> None:
    fields, files = fields_for(get_provider("openai"))
    assert fields == {"prompt": "a cat", "model": "sora-2", "size": "1280x720", "seed": None, "seconds": "8"}
    assert files == {}
    fields, _ = fields_for(get_provider("openai"), seconds=None, size=None, seed=3, extra={"style": "noir"})
    assert fields == {"prompt": "a cat", "model": "sora-2", "size": None, "seed": 3, "style": "noir"}


def test_openai_image_upload_or_url() -> None:
    image = load_image(image_bytes("PNG"))
    fields, files = fields_for(get_provider("openai"), multipart=True, image=image)
    assert files == {"input_reference": image}
    assert "input_reference" not in fields
    fields, files = fields_for(get_provider("openai"), multipart=False, image=image)
    assert files == {}
    assert fields["input_reference"] == {"image_url": image.as_url()}
    assert fields["input_reference"]["image_url"].startswith("data:image/png;base64,")
    remote = load_image("https://cdn.example/ref.png")
    fields, files = fields_for(get_provider("openai"), multipart=True, image=remote)
    assert files == {}
    assert fields["input_reference"] == {"image_url": "https://cdn.example/ref.png"}
    body = encode(fields, multipart=True, files=files)
    assert body.data["input_reference[image_url]"] == "https://cdn.example/ref.png"


def test_json_fields_dialect() -> None:
    image = load_image(image_bytes("JPEG"))
    fields, files = fields_for(get_provider("json-fields"), seconds="10.0", size="720x1280", image=image, seed=9)
    assert files == {}
    assert fields == {
        "prompt": "a cat",
        "model": "sora-2",
        "seed": 9,
        "duration": 10,
        "width": 720,
        "height": 1280,
        "image": image.as_url(),
    }
    assert isinstance(fields["duration"], int)
    assert isinstance(fields["width"], int) and isinstance(fields["height"], int)
    assert fields["image"].startswith("data:image/jpeg;base64,")
    assert "size" not in fields and "seconds" not in fields
    body = encode(fields, multipart=False)
    assert body.json is not None and body.json["duration"] == 10


def test_json_fields_without_optional_values() -> None:
    fields, _ = fields_for(get_provider("json-fields"), seconds=None, size=None, model=None, extra={"fps": 24})
    assert fields == {"prompt": "a cat", "model": None, "seed": None, "fps": 24}
    assert encode(fields, multipart=False).json == {"prompt": "a cat", "fps": 24}


def test_extra_fields_override() -> None:
    fields, _ = fields_for(get_provider("openai"), extra={"model": "sora-2-pro"})
    assert fields["model"] == "sora-2-pro"


def test_image_input_as_url_for_bytes() -> None:
    assert ImageInput(data=b"\x89PNG", mime="image/png").as_url() == "data:image/png;base64,iVBORw=="


# ----- edge cases that once crashed or misparsed -----------------------------------------------------------------
@pytest.mark.parametrize("size", ["1280*720", "big", "1280x"])
def test_json_fields_malformed_size_is_an_invalid_request(size: str) -> None:
    with pytest.raises(InvalidRequestError):
        fields_for(get_provider("json-fields"), size=size)


def test_multipart_booleans_and_nested_none() -> None:
    body = encode({"watermark": False, "refs": [{"id": "a", "note": None}]}, multipart=True)
    assert body.data == {"watermark": "false", "refs[][id]": "a"}


def test_multipart_list_of_dicts_round_trips_through_the_server_parser() -> None:
    from sora_nb.server.body import _nest
    from sora_nb.server.params import character_ids

    body = encode({"prompt": "p", "characters": [{"id": "char_1"}, {"id": "char_2"}]}, multipart=True)
    items = [(k, v) for k, vs in body.data.items() for v in (vs if isinstance(vs, list) else [vs])]
    assert character_ids(_nest(items)) == ["char_1", "char_2"]
