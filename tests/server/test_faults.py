"""Injected faults: deterministic 5xx and 429, dropped and stalled downloads, expiry, JSON labelled video/mp4."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from sora_nb.server import ServerHandle
from sora_nb.server.faults import Faults
from tests.helpers import client_for, wait_for


def test_parse_and_reject_fault_specs() -> None:
    faults = Faults.parse("5xx=0.3, 429=0.1,drop=0.5,stall=2,times=2,expire=30,json200,retry_after=3,seed=7")
    assert (faults.error_rate, faults.rate_limit, faults.drop, faults.stall, faults.times) == (0.3, 0.1, 0.5, 2, 2)
    assert (faults.expire, faults.json_as_mp4, faults.retry_after, faults.seed) == (30, True, 3, 7)
    assert not Faults.parse("").active
    for bad in ("5xx=2", "drop=1.5", "bogus=1", "5xx", "stall=-1", "seed=x"):
        with pytest.raises(ValueError, match="fault"):
            Faults.parse(bad)


def _statuses(handle: ServerHandle, count: int) -> list[int]:
    with client_for(handle) as client:
        return [client.get("/videos").status_code for _ in range(count)]


def test_5xx_on_a_fraction_of_gets_is_deterministic_under_a_seed(make_server: Callable[..., ServerHandle]) -> None:
    first = _statuses(make_server(faults="5xx=0.5,seed=3"), 40)
    second = _statuses(make_server(faults="5xx=0.5,seed=3"), 40)
    other = _statuses(make_server(faults="5xx=0.5,seed=4"), 40)
    assert first == second and first != other
    assert {500, 502, 503} & set(first) and 200 in first
    assert 8 <= sum(status >= 500 for status in first) <= 32


def test_5xx_spares_posts_and_bodies_are_json(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="5xx=1")
    with client_for(handle) as client:
        assert client.post("/videos", json={"prompt": "posts are spared"}).status_code == 200
        failed = client.get("/videos")
        assert failed.status_code in (500, 502, 503) and failed.json()["error"]["type"] == "server_error"


def test_429_with_retry_after(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="429=1,retry_after=4")
    with client_for(handle) as client:
        response = client.post("/videos", json={"prompt": "rate limited"})
        assert response.status_code == 429 and response.headers["retry-after"] == "4"
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert handle.app.store.jobs() == []


def _finished(handle: ServerHandle) -> tuple[httpx.Client, str]:
    client = client_for(handle)
    video = client.post("/videos", json={"prompt": "a download that breaks"}).json()
    wait_for(client, video["id"])
    return client, video["id"]


def test_drop_cuts_the_first_download_and_range_resumes(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="drop=0.5")
    client, video_id = _finished(handle)
    size = (handle.app.store.asset(handle.app.store.get(video_id), "video")).stat().st_size  # type: ignore[arg-type]
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", f"/videos/{video_id}/content") as response:
        assert response.headers["content-length"] == str(size)
        for chunk in response.iter_bytes():
            received += chunk
    assert 0 < len(received) < size
    assert abs(len(received) - size // 2) <= 1
    rest = client.get(f"/videos/{video_id}/content", headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    whole = bytes(received) + rest.content
    assert whole == client.get(f"/videos/{video_id}/content").content and len(whole) == size
    client.close()


def test_stall_pauses_mid_download(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="stall=1.5")
    client, video_id = _finished(handle)
    with pytest.raises(httpx.ReadTimeout):
        client.get(f"/videos/{video_id}/content", timeout=httpx.Timeout(30, read=0.5))
    started = time.monotonic()
    again = client.get(f"/videos/{video_id}/content")
    assert again.status_code == 200 and again.content[4:8] == b"ftyp"
    assert time.monotonic() - started < 1.0
    client.close()


def test_expire_fault_sets_a_short_retention(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="expire=1")
    client, video_id = _finished(handle)
    record = client.get(f"/videos/{video_id}").json()
    assert record["expires_at"] - record["completed_at"] == 1
    time.sleep(max(0.0, record["expires_at"] - time.time()) + 1.1)
    assert client.get(f"/videos/{video_id}/content").json()["error"]["code"] == "video_expired"
    client.close()


def test_json200_labels_a_json_body_as_video(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="json200", speed=0.5)
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "not ready yet"}).json()
        response = client.get(f"/videos/{video['id']}/content")
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
        assert response.json()["id"] == video["id"] and response.content[4:8] != b"ftyp"
