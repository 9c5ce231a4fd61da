"""Job lifecycle of the local server over HTTP: progress, moderation, expiry, capacity, restart, delete."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sora_nb.server import ServerHandle, start
from tests.helpers import client_for, wait_for


def test_status_moves_queued_to_in_progress_to_completed(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(speed=1.0)
    with client_for(handle) as client:
        created = client.post("/videos", json={"prompt": "a lighthouse in a storm"})
        assert created.status_code == 200
        video = created.json()
        assert video["status"] == "queued" and video["progress"] == 0
        assert video["completed_at"] is None and video["expires_at"] is None
        seen: list[tuple[str, int]] = []
        hints = []
        while True:
            response = client.get(f"/videos/{video['id']}")
            record = response.json()
            seen.append((record["status"], record["progress"]))
            if record["status"] == "completed":
                break
            hints.append(int(response.headers["openai-poll-after-ms"]))
            time.sleep(0.2)
        statuses = [status for status, _ in seen]
        assert statuses.index("in_progress") < statuses.index("completed")
        running = [progress for status, progress in seen if status == "in_progress"]
        assert len(set(running)) >= 3 and running == sorted(running) and max(running) <= 99
        assert all(250 <= hint <= 2000 for hint in hints)
        assert "openai-poll-after-ms" not in response.headers
        assert record["progress"] == 100
        assert record["expires_at"] - record["completed_at"] == 86400


def test_blocked_word_fails_with_moderation_blocked(server: ServerHandle) -> None:
    with client_for(server) as client:
        video = client.post("/videos", json={"prompt": "a moderation-test scene"}).json()
        record = wait_for(client, video["id"])
        assert record["status"] == "failed"
        assert record["error"]["code"] == "moderation_blocked" and "moderation-test" in record["error"]["message"]
        content = client.get(f"/videos/{video['id']}/content")
        assert content.status_code == 404 and content.json()["error"]["code"] == "video_failed"


def test_content_before_completion_is_video_not_ready(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(speed=0.5)
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "slow"}).json()
        response = client.get(f"/videos/{video['id']}/content")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "video_not_ready"


def test_retention_expires_the_files(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(retention=1.0)
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "short lived"}).json()
        record = wait_for(client, video["id"])
        assert record["expires_at"] - record["completed_at"] == 1
        assert client.get(f"/videos/{video['id']}/content").status_code == 200
        time.sleep(max(0.0, record["expires_at"] - time.time()) + 1.1)
        gone = client.get(f"/videos/{video['id']}/content")
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "video_expired"
        assert not (handle.app.store.job_dir(video["id"]) / "video.mp4").exists()


def test_concurrency_cap_answers_429_with_retry_after(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(speed=0.2, max_active=2)
    with client_for(handle) as client:
        for i in range(2):
            assert client.post("/videos", json={"prompt": f"job {i}"}).status_code == 200
        refused = client.post("/videos", json={"prompt": "one too many"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "too_many_active_jobs"
        assert len(client.get("/videos").json()["data"]) == 2


def test_restarted_server_knows_its_jobs_and_finishes_them(tmp_path: Path) -> None:
    with start(speed=50, data_dir=tmp_path) as first, client_for(first) as client:
        done = client.post("/videos", json={"prompt": "kept across restarts"}).json()
        wait_for(client, done["id"])
        original = client.get(f"/videos/{done['id']}/content").content
    with start(speed=0.3, data_dir=tmp_path) as second, client_for(second) as client:
        unfinished = client.post("/videos", json={"prompt": "interrupted by a restart"}).json()
    with start(speed=50, data_dir=tmp_path) as third, client_for(third) as client:
        assert client.get(f"/videos/{done['id']}/content").content == original
        ids = {v["id"] for v in client.get("/videos").json()["data"]}
        assert {done["id"], unfinished["id"]} <= ids
        assert wait_for(client, unfinished["id"])["status"] == "completed"
        assert client.get(f"/videos/{unfinished['id']}/content").status_code == 200


def test_delete_removes_files_and_cancels_a_running_job(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(speed=0.2)
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "cancel me"}).json()
        deleted = client.delete(f"/videos/{video['id']}")
        assert deleted.json() == {"id": video["id"], "object": "video.deleted", "deleted": True}
        assert client.get(f"/videos/{video['id']}").status_code == 404
        assert not handle.app.store.job_dir(video["id"]).exists()
        assert client.delete(f"/videos/{video['id']}").status_code == 404


def test_remix_keeps_size_and_points_at_its_source(server: ServerHandle) -> None:
    with client_for(server) as client:
        source = client.post("/videos", json={"prompt": "a paper boat", "size": "1280x720", "seconds": 8}).json()
        early = client.post(f"/videos/{source['id']}/remix", json={"prompt": "a paper boat in the rain"})
        assert early.status_code == 400 and early.json()["error"]["code"] == "video_not_completed"
        wait_for(client, source["id"])
        remix = client.post(f"/videos/{source['id']}/remix", json={"prompt": "a paper boat in the rain"}).json()
        assert remix["remixed_from_video_id"] == source["id"]
        assert (remix["size"], remix["seconds"]) == ("1280x720", "8")


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prompts the server really renders (a spy on the renderer; everything else is real)."""
    import sora_nb.server.engines.synthetic.engine as engine_module

    rendered: list[str] = []
    real_render = engine_module.render

    def counting(spec: Any, out: Path, **kwargs: Any) -> Any:
        rendered.append(spec.prompt)
        return real_render(spec, out, **kwargs)

    monkeypatch.setattr(engine_module, "render", counting)
    return rendered


def test_an_identical_request_is_copied_from_the_first_render(
    make_server: Callable[..., ServerHandle], renders: list[str]
) -> None:
    handle = make_server()
    with client_for(handle) as client:
        same = [client.post("/videos", json={"prompt": "a class runs the same cell"}).json()["id"] for _ in range(3)]
        other = client.post("/videos", json={"prompt": "one student changes it"}).json()["id"]
        for video_id in [*same, other]:
            assert wait_for(client, video_id)["status"] == "completed"
        bodies = [client.get(f"/videos/{video_id}/content").content for video_id in same]
        thumbs = {client.get(f"/videos/{v}/content", params={"variant": "thumbnail"}).content for v in same}
    assert bodies[0][4:8] == b"ftyp" and bodies.count(bodies[0]) == 3 and len(thumbs) == 1
    assert sorted(renders) == ["a class runs the same cell", "one student changes it"]


def test_copies_waiting_for_a_deleted_render_render_themselves(
    make_server: Callable[..., ServerHandle], renders: list[str]
) -> None:
    handle = make_server(render_workers=1)
    with client_for(handle) as client:
        first, second = (client.post("/videos", json={"prompt": "deleted under me"}).json()["id"] for _ in range(2))
        client.delete(f"/videos/{first}")
        assert wait_for(client, second)["status"] == "completed"
        assert client.get(f"/videos/{second}/content").content[4:8] == b"ftyp"
        third = client.post("/videos", json={"prompt": "deleted under me"}).json()["id"]
        assert wait_for(client, third)["status"] == "completed"  # copied from the second now
    assert renders.count("deleted under me") <= 2
    assert not handle.app.store.job_dir(first).exists()
