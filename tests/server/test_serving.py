"""Content downloads: headers, Range (206/416), ETag (304), HEAD, streamed from disk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sora_nb.server import ServerHandle
from tests.helpers import client_for, wait_for


@pytest.fixture(scope="module")
def done(server: ServerHandle) -> Iterator[tuple[httpx.Client, dict[str, Any], bytes]]:
    with client_for(server) as client:
        video = client.post("/videos", json={"prompt": "content headers"}).json()
        wait_for(client, video["id"])
        full = client.get(f"/videos/{video['id']}/content")
        yield client, video, full.content


def test_full_download_headers(done: tuple[httpx.Client, dict[str, Any], bytes]) -> None:
    client, video, data = done
    response = client.get(f"/videos/{video['id']}/content")
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(data) > 10_000
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"video-')
    assert response.headers["content-disposition"] == f'attachment; filename="{video["id"]}.mp4"'
    assert data[4:8] == b"ftyp"


@pytest.mark.parametrize("header", ["bytes=0-99", "bytes=100-", "bytes=-50"])
def test_range_requests(done: tuple[httpx.Client, dict[str, Any], bytes], header: str) -> None:
    client, video, data = done
    size = len(data)
    first, last = {"bytes=0-99": (0, 99), "bytes=100-": (100, size - 1), "bytes=-50": (size - 50, size - 1)}[header]
    response = client.get(f"/videos/{video['id']}/content", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == data[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"


def test_unsatisfiable_range_is_416(done: tuple[httpx.Client, dict[str, Any], bytes]) -> None:
    client, video, data = done
    response = client.get(f"/videos/{video['id']}/content", headers={"Range": f"bytes={len(data) + 10}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(data)}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"


def test_etag_revalidation_and_if_range(done: tuple[httpx.Client, dict[str, Any], bytes]) -> None:
    client, video, data = done
    etag = client.head(f"/videos/{video['id']}/content").headers["etag"]
    assert client.get(f"/videos/{video['id']}/content", headers={"If-None-Match": etag}).status_code == 304
    stale = client.get(f"/videos/{video['id']}/content", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == data


def test_head_sends_headers_only(done: tuple[httpx.Client, dict[str, Any], bytes]) -> None:
    client, video, _ = done
    response = client.head(f"/videos/{video['id']}/content?variant=thumbnail")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["content-disposition"].endswith('.webp"')
