"""The server's bad-input table: every row gets a 4xx JSON error that says what to do; never a 500 or a hang."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from sora_nb.server import ServerHandle
from tests.helpers import client_for

PNG_640 = io.BytesIO()
Image.new("RGB", (640, 480), "red").save(PNG_640, "PNG")
DATA_URL_640 = "data:image/png;base64," + base64.b64encode(PNG_640.getvalue()).decode()

# (name, method, path, request kwargs, status, error code, param)
# fmt: off
CASES: list[tuple[str, str, str, dict[str, Any], int, str, str | None]] = [
    ("missing prompt", "POST", "/videos", {"json": {"model": "sora-2"}}, 400, "missing_required_parameter", "prompt"),
    ("empty prompt", "POST", "/videos", {"json": {"prompt": "   "}}, 400, "invalid_value", "prompt"),
    ("prompt too long", "POST", "/videos", {"json": {"prompt": "x" * 32001}}, 400, "string_above_max_length",
     "prompt"),
    ("prompt not a string", "POST", "/videos", {"json": {"prompt": ["a"]}}, 400, "invalid_type", "prompt"),
    ("unknown model", "POST", "/videos", {"json": {"prompt": "p", "model": "sora-3"}}, 400, "invalid_model", "model"),
    ("bad size", "POST", "/videos", {"json": {"prompt": "p", "size": "640x480"}}, 400, "invalid_value", "size"),
    ("pro size on sora-2", "POST", "/videos", {"json": {"prompt": "p", "size": "1792x1024"}}, 400, "invalid_value",
     "size"),
    ("seconds 5", "POST", "/videos", {"json": {"prompt": "p", "seconds": "5"}}, 400, "invalid_value", "seconds"),
    ("seconds text", "POST", "/videos", {"json": {"prompt": "p", "seconds": "four"}}, 400, "invalid_type", "seconds"),
    ("seconds bool", "POST", "/videos", {"json": {"prompt": "p", "seconds": True}}, 400, "invalid_type", "seconds"),
    ("unknown parameter", "POST", "/videos", {"json": {"prompt": "p", "secconds": 8}}, 400, "unknown_parameter",
     "secconds"),
    ("body not json", "POST", "/videos", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     400, "invalid_json", None),
    ("json array body", "POST", "/videos", {"json": ["prompt"]}, 400, "invalid_json", None),
    ("unsupported content type", "POST", "/videos", {"content": b"<xml/>", "headers": {"content-type": "text/xml"}},
     415, "unsupported_media_type", None),
    ("broken multipart", "POST", "/videos",
     {"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=zz"}}, 400,
     "invalid_multipart", None),
    ("multipart without boundary", "POST", "/videos",
     {"content": b"--zz\r\n", "headers": {"content-type": "multipart/form-data"}}, 400, "invalid_multipart", None),
    ("image wrong size", "POST", "/videos",
     {"files": {"prompt": (None, "p"), "input_reference": ("a.png", PNG_640.getvalue(), "image/png")}}, 400,
     "invalid_image_dimensions", "input_reference"),
    ("image not an image", "POST", "/videos",
     {"files": {"prompt": (None, "p"), "input_reference": ("a.png", b"hello", "image/png")}}, 400, "invalid_image",
     "input_reference"),
    ("image data URL wrong size", "POST", "/videos",
     {"json": {"prompt": "p", "input_reference": {"image_url": DATA_URL_640}}}, 400, "invalid_image_dimensions",
     "input_reference"),
    ("image data URL not base64", "POST", "/videos",
     {"json": {"prompt": "p", "input_reference": {"image_url": "data:image/png,abc"}}}, 400, "invalid_image_url",
     "input_reference.image_url"),
    ("image URL unreachable", "POST", "/videos",
     {"json": {"prompt": "p", "input_reference": {"image_url": "http://127.0.0.1:9/x.png"}}}, 400,
     "invalid_image_url", "input_reference.image_url"),
    ("image both url and file", "POST", "/videos",
     {"json": {"prompt": "p", "input_reference": {"image_url": DATA_URL_640, "file_id": "file-1"}}}, 400,
     "invalid_value", "input_reference"),
    ("unknown file id", "POST", "/videos", {"json": {"prompt": "p", "input_reference": {"file_id": "file-nope"}}},
     400, "file_not_found", "input_reference.file_id"),
    ("unknown character", "POST", "/videos", {"json": {"prompt": "p", "characters": [{"id": "char_x"}]}}, 400,
     "character_not_found", "characters"),
    ("three characters", "POST", "/videos", {"json": {"prompt": "p", "characters": [{"id": "a"}] * 3}}, 400,
     "invalid_value", "characters"),
    ("unknown video", "GET", "/videos/video_nope", {}, 404, "video_not_found", "video_id"),
    ("hostile video id", "GET", "/videos/..%2F..%2Fetc%2Fpasswd", {}, 404, "video_not_found", "video_id"),
    ("unknown video content", "GET", "/videos/video_nope/content", {}, 404, "video_not_found", "video_id"),
    ("bad variant", "GET", "/videos/{done}/content?variant=gif", {}, 400, "invalid_value", "variant"),
    ("remix unknown", "POST", "/videos/video_nope/remix", {"json": {"prompt": "p"}}, 404, "video_not_found",
     "video_id"),
    ("remix without prompt", "POST", "/videos/{done}/remix", {"json": {}}, 400, "missing_required_parameter",
     "prompt"),
    ("remix unfinished", "POST", "/videos/{pending}/remix", {"json": {"prompt": "p"}}, 400, "video_not_completed",
     "video"),
    ("edit without video", "POST", "/videos/edits", {"json": {"prompt": "p"}}, 400, "missing_required_parameter",
     "video"),
    ("edit with a bad video reference", "POST", "/videos/edits", {"json": {"prompt": "p", "video": "video_1"}}, 400,
     "invalid_value", "video"),
    ("edit upload not a video", "POST", "/videos/edits",
     {"files": {"prompt": (None, "p"), "video": ("v.mp4", b"not a video", "video/mp4")}}, 400, "invalid_video",
     "video"),
    ("extend without seconds", "POST", "/videos/extensions", {"json": {"prompt": "p", "video": {"id": "{done}"}}},
     400, "missing_required_parameter", "seconds"),
    ("list limit too big", "GET", "/videos?limit=500", {}, 400, "invalid_value", "limit"),
    ("list limit negative", "GET", "/videos?limit=-1", {}, 400, "invalid_value", "limit"),
    ("list bad order", "GET", "/videos?order=up", {}, 400, "invalid_value", "order"),
    ("list after unknown", "GET", "/videos?after=video_nope", {}, 400, "invalid_value", "after"),
    ("character without name", "POST", "/videos/characters", {"files": {"video": ("v.mp4", b"x", "video/mp4")}}, 400,
     "invalid_value", "name"),
    ("character as json", "POST", "/videos/characters", {"json": {"name": "x"}}, 415, "unsupported_media_type",
     None),
    ("unknown character id", "GET", "/videos/characters/char_nope", {}, 404, "character_not_found", "character_id"),
    ("unknown path", "GET", "/v2/things", {}, 404, "not_found", None),
    ("method not allowed", "PUT", "/videos", {}, 405, "bad_request", None),
    ("range unsatisfiable", "GET", "/videos/{done}/content", {"headers": {"Range": "bytes=999999999-"}}, 416,
     "range_not_satisfiable", None),
]
# fmt: on


@pytest.fixture(scope="module")
def ids(server: ServerHandle) -> Iterator[dict[str, str]]:
    from tests.helpers import wait_for

    with client_for(server) as client:
        done = client.post("/videos", json={"prompt": "bad input table source"}).json()["id"]
        wait_for(client, done)
    slow = server.app.store
    pending = slow.create(
        kind="generate",
        model="sora-2",
        prompt="pending",
        width=720,
        height=1280,
        seconds=4,
    )
    pending.queue_seconds = 3600.0
    yield {"done": done, "pending": pending.id}


@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs", "status", "code", "param"), CASES, ids=[case[0] for case in CASES]
)
def test_bad_input(
    server: ServerHandle,
    ids: dict[str, str],
    name: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
) -> None:
    path = path.replace("{done}", ids["done"]).replace("{pending}", ids["pending"])
    if "json" in kwargs and isinstance(kwargs["json"], dict) and isinstance(kwargs["json"].get("video"), dict):
        kwargs = {"json": {**kwargs["json"], "video": {"id": ids["done"]}}}
    base = server.url if path.startswith("/v2") else server.base_url
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {server.key}"}, timeout=20) as client:
        response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert len(error["message"]) > 15


def test_no_key_is_401_json(server: ServerHandle) -> None:
    response = httpx.get(server.base_url + "/videos")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
