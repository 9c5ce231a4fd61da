"""The relay's rules one by one, against a real upstream: content fetched once, Range and ETag, limits with
Retry-After, a refused upstream create refunded, --no-share, and a restart while a job runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sora_nb.server import ServerHandle, start
from sora_nb.server.relay.storage import SqliteStorage
from tests.helpers import wait_for
from tests.relay.conftest import UPSTREAM_KEY, Class, start_relay


def _upstream_id(cls: Class, video_id: str) -> str:
    storage = SqliteStorage(cls.data_dir)
    try:
        row = storage.video(video_id)
        upstream = storage.upstream(row.upstream_key) if row else None
        assert upstream is not None and upstream.upstream_id is not None
        return upstream.upstream_id
    finally:
        storage.close()


def test_a_finished_video_is_fetched_once_and_served_with_range_and_etag(make_class: Callable[..., Class]) -> None:
    cls = make_class({"ann": 5.0, "ben": 5.0})
    with cls.http("ann") as ann, cls.http("ben") as ben:
        a = ann.post("/videos", json={"prompt": "a lighthouse at dusk"})
        b = ben.post("/videos", json={"prompt": "a lighthouse at dusk"})
        assert (a.headers["x-sora-nb-cache"], b.headers["x-sora-nb-cache"]) == ("miss", "hit")
        for client, answer in ((ann, a), (ben, b)):
            assert wait_for(client, answer.json()["id"])["status"] == "completed"
        upstream_id = _upstream_id(cls, a.json()["id"])
        assert upstream_id == _upstream_id(cls, b.json()["id"])
        sent = dict(cls.upstream.app.bytes_sent)
        assert sent[(upstream_id, "video")] > 0 and sent[(upstream_id, "thumbnail")] > 0
        for _ in range(3):
            for client, answer in ((ann, a), (ben, b)):
                whole = client.get(f"/videos/{answer.json()['id']}/content")
                assert whole.status_code == 200 and whole.content[4:8] == b"ftyp"
        assert dict(cls.upstream.app.bytes_sent) == sent  # served from the relay's copy, not fetched again
        path = f"/videos/{a.json()['id']}/content"
        part = ann.get(path, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100 and part.content == whole.content[:100]
        etag = ann.get(path).headers["etag"]
        assert ann.get(path, headers={"If-None-Match": etag}).status_code == 304
        poster = ann.get(path, params={"variant": "thumbnail"})
        assert poster.status_code == 200 and poster.content[:4] == b"RIFF"
        assert "x-sora-nb-server" not in poster.headers  # not a local preview: the upstream made it
        # deleting a shared video leaves the other student's
        assert ann.delete(f"/videos/{a.json()['id']}").json()["deleted"] is True
        assert ann.get(path).status_code == 404
        assert ben.get(f"/videos/{b.json()['id']}/content").content == whole.content


def test_limits_answer_429_with_retry_after(make_class: Callable[..., Class], slow_upstream: ServerHandle) -> None:
    busy = make_class({"cam": None}, via=slow_upstream, user_jobs=2)
    sent: list[tuple[Class, str]] = []
    with busy.http("cam") as cam:
        for prompt in ("one", "two"):
            made = cam.post("/videos", json={"prompt": prompt})
            assert made.status_code == 200
            sent.append((busy, made.json()["id"]))
        third = cam.post("/videos", json={"prompt": "three"})
        assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
        assert third.json()["error"]["code"] == "too_many_active_jobs"
        assert "most this relay runs for one student (2)" in third.json()["error"]["message"]
    quick = make_class({"dee": None}, via=slow_upstream, user_jobs=5, creates_per_minute=2)
    with quick.http("dee") as dee:
        for prompt in ("four", "five"):
            made = dee.post("/videos", json={"prompt": prompt})
            assert made.status_code == 200
            sent.append((quick, made.json()["id"]))
        third = dee.post("/videos", json={"prompt": "six"})
        assert third.status_code == 429 and 1 <= int(third.headers["retry-after"]) <= 60
        assert third.json()["error"]["code"] == "rate_limit_exceeded"
    upstream_ids = {_upstream_id_when_sent(cls, video_id) for cls, video_id in sent}
    assert {job.id for job in slow_upstream.app.store.jobs()} == upstream_ids  # the refused ones never went


def test_a_create_the_upstream_refuses_is_refunded(make_class: Callable[..., Class], tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gateway-video-1": 0.05}))
    cls = make_class({"eve": 1.0}, prices=prices)
    with cls.http("eve") as eve:
        made = eve.post("/videos", json={"prompt": "a fox", "model": "gateway-video-1", "size": "640x360"})
        assert made.status_code == 200
        record = wait_for(eve, made.json()["id"])
        assert record["status"] == "failed"
        assert "refused" in record["error"]["message"] and "$0.20 charged was refunded" in record["error"]["message"]
        unpriced = eve.post("/videos", json={"prompt": "a fox", "model": "other-model"})
        assert unpriced.status_code == 400 and "--prices FILE" in unpriced.json()["error"]["message"]
    storage = SqliteStorage(cls.data_dir)
    user = storage.user("eve")
    assert user is not None and user.spent == 0
    storage.close()


def test_no_share_gives_identical_requests_their_own_upstream_jobs(make_class: Callable[..., Class]) -> None:
    cls = make_class({"fay": 1.0, "gus": 1.0}, share=False)
    with cls.http("fay") as fay, cls.http("gus") as gus:
        answers = [c.post("/videos", json={"prompt": "the same exam question"}) for c in (fay, gus)]
        assert [a.headers["x-sora-nb-cache"] for a in answers] == ["miss", "miss"]
        for client, answer in zip((fay, gus), answers, strict=True):
            assert wait_for(client, answer.json()["id"])["status"] == "completed"
    assert len(cls.upstream.app.store.jobs()) == 2
    storage = SqliteStorage(cls.data_dir)
    assert [u.spent for u in storage.users() if u.name in ("fay", "gus")] == [0.4, 0.4]
    storage.close()


def test_after_a_restart_a_running_upstream_job_is_followed_again_not_made_again(
    make_class: Callable[..., Class], slow_upstream: ServerHandle
) -> None:
    cls = make_class({"hal": 2.0, "ivy": 2.0}, via=slow_upstream)
    with cls.http("hal") as hal:
        video_id = hal.post("/videos", json={"prompt": "a slow sunrise"}).json()["id"]
        upstream_id = _upstream_id_when_sent(cls, video_id)
    assert slow_upstream.app.store.state(slow_upstream.app.store.jobs()[0]).status != "completed"
    cls.relay.stop()
    cls.relay = start_relay(slow_upstream, cls.data_dir)
    with cls.http("hal") as hal, cls.http("ivy") as ivy:
        shared = ivy.post("/videos", json={"prompt": "a slow sunrise"})
        assert shared.headers["x-sora-nb-cache"] == "hit"
        assert wait_for(hal, video_id)["status"] == "completed"
        assert wait_for(ivy, shared.json()["id"])["status"] == "completed"
        assert hal.get(f"/videos/{video_id}/content").content[4:8] == b"ftyp"
    assert [job.id for job in slow_upstream.app.store.jobs()] == [upstream_id]  # never re-created
    cls.relay.stop()


def _upstream_id_when_sent(cls: Class, video_id: str) -> str:
    """The upstream job's ID, once the relay has recorded it (the create is sent off the request's thread)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return _upstream_id(cls, video_id)
        except AssertionError:
            assert time.monotonic() < deadline, "the relay never recorded the upstream job"
            time.sleep(0.05)


def test_a_create_in_flight_when_the_relay_stopped_is_not_sent_again_and_is_refunded(
    make_class: Callable[..., Class], upstream: ServerHandle, tmp_path: Path
) -> None:
    data_dir = tmp_path / "crashed"
    storage = SqliteStorage(data_dir)
    storage.add_user("jay", "hash", budget=1.0, admin=False)
    storage.admit("video_lost", "jay", "fp", {"prompt": "x"}, 0.4, share=True, now=time.time())
    storage.close()
    relay = start_relay(upstream, data_dir)
    relay.stop()
    storage = SqliteStorage(data_dir)
    row = storage.video("video_lost")
    assert row is not None
    lost = storage.upstream(row.upstream_key)
    assert lost is not None and lost.status == "failed" and lost.error_code == "relay_restarted"
    user = storage.user("jay")
    assert user is not None and user.spent == 0
    storage.close()
    assert upstream.app.store.jobs() == []


@pytest.mark.parametrize("token", ["", "Bearer sk-relay-not-a-token", "Basic abc"])
def test_a_missing_or_unknown_token_is_refused(make_class: Callable[..., Class], token: str) -> None:
    cls = make_class({})
    with cls.http("teacher") as client:
        answer = client.get("/videos", headers={"Authorization": token})
        assert answer.status_code == 401 and "token your teacher gave you" in answer.json()["error"]["message"]


WAN = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


@pytest.mark.parametrize(
    ("dialect", "model"),
    [("json-fields", None), ("cdn-redirect", None), ("sglang", None), ("vllm-omni", WAN), ("unsloth", None)],
)
def test_the_relay_forwards_to_other_dialects_with_their_profiles(
    make_class: Callable[..., Class], tmp_path: Path, dialect: str, model: str | None
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({WAN: 0.01}))  # a self-hosted engine's model, priced by the teacher
    with start(speed=50, data_dir=tmp_path / dialect, key=UPSTREAM_KEY, dialect=dialect) as upstream:
        cls = make_class({"rae": 1.0}, via=upstream, upstream_provider=dialect, prices=prices)
        with cls.http("rae") as rae:
            made = rae.post(
                "/videos", json={"prompt": "a windmill", "size": "1280x720", **({"model": model} if model else {})}
            )
            record = wait_for(rae, made.json()["id"])
            assert record["status"] == "completed", record
            assert rae.get(f"/videos/{record['id']}/content").content[4:8] == b"ftyp"
        assert len(upstream.app.store.jobs()) == 1
        cls.relay.stop()


def test_remixes_of_a_shared_video_share_one_upstream_remix(make_class: Callable[..., Class]) -> None:
    cls = make_class({"sam": 0.8, "tia": 0.4})
    with cls.http("sam") as sam, cls.http("tia") as tia:
        sources = [c.post("/videos", json={"prompt": "a quiet harbour"}).json()["id"] for c in (sam, tia)]
        for client, source in zip((sam, tia), sources, strict=True):
            assert wait_for(client, source)["status"] == "completed"
        assert tia.post(f"/videos/{sources[0]}/remix", json={"prompt": "at night"}).status_code == 404  # not hers
        pairs = list(zip((sam, tia), sources, strict=True))
        remixes = [client.post(f"/videos/{source}/remix", json={"prompt": "at night"}) for client, source in pairs]
        assert [r.headers["x-sora-nb-cache"] for r in remixes] == ["miss", "hit"]
        for client, remix, source in zip((sam, tia), remixes, sources, strict=True):
            record = wait_for(client, remix.json()["id"])
            assert record["status"] == "completed" and record["remixed_from_video_id"] == source
    upstream_jobs = cls.upstream.app.store.jobs()
    assert [job.kind for job in upstream_jobs] == ["generate", "remix"]
    storage = SqliteStorage(cls.data_dir)
    assert {u.name: u.spent for u in storage.users()} == {"sam": 0.8, "teacher": 0.0, "tia": 0.0}
    storage.close()


def test_an_upstream_that_refuses_the_key_fails_the_video_with_a_word_for_the_teacher(
    make_class: Callable[..., Class], tmp_path: Path
) -> None:
    with start(speed=50, data_dir=tmp_path / "other", key="sk-another-key") as other:
        cls = make_class({"uma": 1.0}, via=other)
        with cls.http("uma") as uma:
            record = wait_for(uma, uma.post("/videos", json={"prompt": "a crane"}).json()["id"])
        assert record["status"] == "failed"
        assert record["error"]["message"] == (
            "The upstream service refused the relay's key (HTTP 401); tell your teacher. "
            "The $0.40 charged was refunded."
        )
        cls.relay.stop()


def test_a_one_at_a_time_upstream_makes_every_video_in_turn(make_class: Callable[..., Class], tmp_path: Path) -> None:
    # Aquiles-Image answers a second create 503 "limit of 1 concurrent tasks": nothing was created, so the relay
    # sends it again when its running upstream job ends, and every student gets a video, with one create each
    with start(speed=20, data_dir=tmp_path / "aquiles", key=UPSTREAM_KEY, dialect="aquiles") as upstream:
        cls = make_class({"ana": 1.0, "ben": 1.0, "cy": 1.0}, via=upstream, upstream_provider="aquiles")
        with cls.http("ana") as ana, cls.http("ben") as ben, cls.http("cy") as cy:
            made = [
                (c, c.post("/videos", json={"prompt": f"a {what}"}).json()["id"])
                for c, what in ((ana, "fox"), (ben, "owl"), (cy, "deer"))
            ]
            for client, video_id in made:
                assert wait_for(client, video_id)["status"] == "completed"
        assert len(upstream.app.store.jobs()) == 3
        cls.relay.stop()
