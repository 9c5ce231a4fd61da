"""The teacher's view (``/admin/usage``, ``sora_nb.relay_usage``) and a student's notebook against the relay:
``configure(base_url=relay, api_key=token)``, a shared request seen as a hit, a refusal as BudgetExceededError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import sora_nb
from sora_nb import errors
from tests.helpers import wait_for
from tests.relay.conftest import Class


def test_relay_usage_gives_each_students_spend_jobs_and_posters(make_class: Callable[..., Class]) -> None:
    cls = make_class({"kim": 1.0, "lee": 1.0})
    with cls.http("kim") as kim, cls.http("lee") as lee:
        for client in (kim, lee):
            assert wait_for(client, client.post("/videos", json={"prompt": "a red kite"}).json()["id"])
        assert lee.get(cls.relay.url + "/admin/usage").status_code == 403  # a student is not a teacher
    rows = {row["name"]: row for row in sora_nb.relay_usage(cls.relay.base_url, cls.tokens["teacher"])}
    assert rows["kim"]["spent"] == 0.4 and rows["kim"]["remaining"] == 0.6 and rows["kim"]["hits"] == 0
    assert rows["lee"]["spent"] == 0 and rows["lee"]["hits"] == 1 and rows["lee"]["completed"] == 1
    assert rows["teacher"]["admin"] and rows["teacher"]["jobs"] == 0
    video = rows["lee"]["videos"][0]
    assert video["prompt"] == "a red kite" and video["status"] == "completed" and video["hit"]
    with cls.http("teacher") as teacher:
        assert teacher.get(cls.relay.url + video["poster"]).content[:4] == b"RIFF"
    grid = sora_nb.relay_usage(cls.relay.url, cls.tokens["teacher"], gallery=True)
    assert grid.data.count("data:image/jpeg;base64,") == 2 and "lee: a red kite (shared)" in grid.data
    with pytest.raises(errors.AuthenticationError, match="users add NAME --admin"):
        sora_nb.relay_usage(cls.relay.base_url, cls.tokens["kim"])


def test_students_configure_the_relay_share_a_job_and_meet_their_budget(
    make_class: Callable[..., Class], tmp_path: Path, isolated_config: None
) -> None:
    cls = make_class({"max": 0.4, "nia": 0.4, "oli": 0.0})
    costs = {}
    for name in ("max", "nia"):
        sora_nb.configure(
            base_url=cls.relay.base_url, api_key=cls.tokens[name], cache_dir=tmp_path / name, budget_usd=0.4
        )
        job = sora_nb.submit("a paper boat on a pond")
        assert job.result(timeout=60).read_bytes()[4:8] == b"ftyp"
        costs[name] = (job.cost, job.cached, sora_nb.spent())
    assert len(cls.upstream.app.store.jobs()) == 1  # nia's identical request shared max's upstream job
    # the relay says "hit": nia's own notebook counts nothing for it either, and shows it as a cache hit
    assert costs == {"max": (0.4, False, 0.4), "nia": (0.0, True, 0.0)}
    sora_nb.configure(base_url=cls.relay.base_url, api_key=cls.tokens["oli"], cache_dir=tmp_path / "oli")
    assert sora_nb.submit("a paper boat on a pond").result(timeout=60).is_file()  # a shared job: free
    with pytest.raises(errors.BudgetExceededError, match=r"costs \$0.40 and you have \$0.00 left"):
        sora_nb.submit("a paper plane").result(timeout=60)
    assert len(cls.upstream.app.store.jobs()) == 1


def test_the_official_sdk_talks_to_the_relay(make_class: Callable[..., Class], tmp_path: Path) -> None:
    import openai

    cls = make_class({"pat": 0.4})
    sdk = openai.OpenAI(base_url=cls.relay.base_url, api_key=cls.tokens["pat"], max_retries=0)
    video = sdk.videos.create_and_poll(prompt="a heron in the reeds", size="1280x720", seconds="4")
    assert video.status == "completed" and (video.model, video.size, video.seconds) == ("sora-2", "1280x720", "4")
    target = tmp_path / "heron.mp4"
    with sdk.videos.with_streaming_response.download_content(video.id) as response:
        response.stream_to_file(target)
    assert target.read_bytes()[4:8] == b"ftyp"
    assert [v.id for v in sdk.videos.list()] == [video.id]
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.videos.create(prompt="a heron in flight")
    assert refused.value.code == "insufficient_quota"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=cls.relay.base_url, api_key="sk-wrong", max_retries=0).videos.list()
