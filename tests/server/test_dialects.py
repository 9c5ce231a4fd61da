"""Every dialect of the local server, spoken to with plain httpx over loopback."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import httpx

from sora_nb.server import ServerHandle
from tests.helpers import client_for, wait_for


def form(**fields: str) -> dict[str, tuple[None, str]]:
    """Multipart form fields for httpx."""
    return {name: (None, value) for name, value in fields.items()}


def test_openai_accepts_multipart_and_json(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server()
    with client_for(handle) as client:
        by_form = client.post("/videos", files=form(prompt="multipart prompt", seconds="8", size="1280x720"))
        by_json = client.post("/videos", json={"prompt": "json prompt", "seconds": 8, "size": "1280x720"})
        for response in (by_form, by_json):
            assert response.status_code == 200, response.text
            assert (response.json()["seconds"], response.json()["size"]) == ("8", "1280x720")
        unknown = client.post("/videos", json={"prompt": "typo", "secconds": 8})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "secconds"


def test_json_fields_dialect(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="json-fields", speed=1.0)
    body = {
        "prompt": "a kite over dunes",
        "duration": 4,
        "width": 1280,
        "height": 720,
        "fps": 24,
        "seed": 7,
        "n": 1,
        "metadata": {"lesson": "3"},
    }
    with client_for(handle) as client:
        refused = client.post("/videos", files=form(prompt="multipart is refused"))
        assert refused.status_code == 415 and "application/json" in refused.json()["error"]["message"]
        video = client.post("/videos", json=body).json()
        assert video["status"] == "pending"
        assert (video["duration"], video["width"], video["height"], video["fps"], video["seed"], video["n"]) == (
            4,
            1280,
            720,
            24,
            7,
            1,
        )
        assert video["metadata"] == {"lesson": "3"} and video["seconds"] == "4.0"
        assert isinstance(video["progress"], float)
        assert dt.datetime.fromisoformat(video["created_at"].replace("Z", "+00:00")).tzinfo is not None
        record = wait_for(client, video["id"], statuses=("processing",))
        assert record["status"] == "processing" and "url" not in record
        record = wait_for(client, video["id"])
        assert record["status"] == "completed" and isinstance(record["completed_at"], str)
        assert record["url"].endswith(f"/v1/videos/{video['id']}/content")
        downloaded = client.get(record["url"])
        assert downloaded.status_code == 200 and downloaded.content[4:8] == b"ftyp"
        by_aspect = client.post("/videos", json={"prompt": "aspect", "aspect_ratio": "16:9", "resolution": "720p"})
        assert (by_aspect.json()["width"], by_aspect.json()["height"]) == (1280, 720)


def test_raw_token_dialect(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="raw-token")
    with httpx.Client(base_url=handle.base_url, timeout=30) as client:
        bare = {"Authorization": handle.key}
        created = client.post("/videos", files=form(prompt="bare token"), headers=bare)
        assert created.status_code == 200, created.text
        bearer = client.get(f"/videos/{created.json()['id']}", headers={"Authorization": f"Bearer {handle.key}"})
        assert bearer.status_code == 200
        as_json = client.post("/videos", json={"prompt": "json is refused"}, headers=bare)
        assert as_json.status_code == 415 and "multipart" in as_json.json()["error"]["message"]
        assert client.get("/videos", headers={"Authorization": "nope"}).status_code == 401


def test_cdn_redirect_dialect(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="cdn-redirect")
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "served from a cdn"}).json()
        early = client.get(f"/videos/{video['id']}/content")
        assert early.status_code == 400 and early.json()["error"]["code"] == "task_not_completed"
        wait_for(client, video["id"])
        redirect = client.get(f"/videos/{video['id']}/content")
        assert redirect.status_code == 302
        location = redirect.headers["location"]
        api, cdn = urlsplit(handle.base_url), urlsplit(location)
        assert cdn.hostname == api.hostname and cdn.port != api.port
        assert "sig=" in location and "expires=" in location
    with httpx.Client(timeout=30) as plain:
        fetched = plain.get(location)
        assert fetched.status_code == 200 and fetched.content[4:8] == b"ftyp"
        partial = plain.get(location, headers={"Range": "bytes=0-15"})
        assert partial.status_code == 206 and partial.content == fetched.content[:16]
        leaked = plain.get(location, headers={"Authorization": f"Bearer {handle.key}"})
        assert leaked.status_code == 400 and b"Only one auth mechanism" in leaked.content
        assert handle.app.cdn_rejected_headers == ["authorization"]
        forged = plain.get(location.replace("sig=", "sig=0"))
        assert forged.status_code == 403 and b"SignatureDoesNotMatch" in forged.content


def test_cdn_signed_url_expires(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="cdn-redirect")
    handle.app.config.cdn_ttl = 0.0
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "expiring link"}).json()
        wait_for(client, video["id"])
        location = client.get(f"/videos/{video['id']}/content").headers["location"]
    time.sleep(1.1)
    expired = httpx.get(location)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_new_api_dialect(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="new-api")
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "relay task", "extra_knob": "passed through"}).json()
        assert video["id"].startswith("task_") and video["task_id"] == video["id"]
        assert {"/", "+", "="} <= set(video["id"])
        assert video["status"] == "unknown"
        path_id = quote(video["id"], safe="")
        record = client.get(f"/videos/{path_id}").json()
        assert record["progress"].endswith("%") and record["id"] == video["id"]
        record = wait_for(client, video["id"], path_id=path_id)
        assert record["progress"] == "100%" and record["status"] == "completed"
        content = client.get(f"/videos/{path_id}/content")
        assert content.status_code == 200 and content.content[4:8] == b"ftyp"
        unknown = client.get("/videos/task_missing")
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "task_not_exist"


def test_azure_dialect(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="azure")
    assert handle.base_url.endswith("/openai/v1")
    with client_for(handle) as client:
        created = client.post("/videos", json={"prompt": "azure flavoured"})
        assert created.status_code == 200, created.text
    with httpx.Client(base_url=handle.base_url, headers={"api-key": handle.key}) as unversioned:
        no_version = unversioned.get("/videos")
        assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "missing_api_version"
    with httpx.Client(base_url=handle.base_url, params={"api-version": "preview"}) as bearer:
        denied = bearer.get("/videos", headers={"Authorization": f"Bearer {handle.key}"})
        assert denied.status_code == 401 and "api-key" in denied.json()["error"]["message"]
    with httpx.Client(base_url=handle.url, headers={"api-key": handle.key}, params={"api-version": "1"}) as wrong:
        missing = wrong.get("/v1/videos")
        assert missing.status_code == 404 and "/openai/v1" in missing.json()["error"]["message"]
