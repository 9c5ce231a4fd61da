"""A class of 30 students x 2 jobs through the relay, in front of a faulty upstream: one upstream job per
distinct request, budgets held exactly, each student sees only their own videos, the key never shows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import pytest

from sora_nb import errors
from sora_nb.client import AsyncVideosClient
from sora_nb.server.relay.storage import SqliteStorage
from tests.helpers import until_done
from tests.relay.conftest import UPSTREAM_KEY, Class

PRICE = 0.40  # sora-2, 4 s at $0.10/s
STUDENTS = 30
POOR = (1, 2)  # budget for one video; both their prompts are their own, so the second is refused


def prompts(i: int) -> tuple[str, str]:
    """Student ``i``'s two prompts: many are the same as another student's."""
    if i in POOR:
        return f"solo {i}", f"student {i} idea"
    return f"topic {i % 10}", "everyone's cat" if i % 3 == 0 else f"student {i} idea"


class Recording(httpx.AsyncHTTPTransport):
    """A transport that keeps every API answer (headers and body) it hands the client."""

    def __init__(self, seen: list[bytes]) -> None:
        super().__init__()
        self.seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        body = await response.aread()
        self.seen.append(str(response.headers).encode() + body)
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)


async def _student(cls: Class, i: int, round_: int, ids: dict[str, list[str]], refused: dict[str, str]) -> None:
    name = f"s{i:02d}"
    client = AsyncVideosClient(cls.relay.base_url, cls.tokens[name], transport=Recording(cls.seen))
    try:
        try:
            video = await client.create(prompts(i)[round_])
        except errors.BudgetExceededError as exc:
            refused[name] = str(exc)
            return
        ids.setdefault(name, []).append(video.id)
        video = await until_done(client, video.id)
        assert video.status == "completed", video
    finally:
        await client.aclose()


def test_a_class_shares_upstream_jobs_holds_budgets_and_isolates_students(
    make_class: Callable[..., Class], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    budgets: dict[str, float | None] = {f"s{i:02d}": PRICE if i in POOR else 2 * PRICE for i in range(STUDENTS)}
    cls = make_class(budgets)
    ids: dict[str, list[str]] = {}
    refused: dict[str, str] = {}

    async def lesson() -> None:
        for round_ in (0, 1):  # everyone's first video, then everyone's second
            await asyncio.gather(*(_student(cls, i, round_, ids, refused) for i in range(STUDENTS)))

    asyncio.run(lesson())

    distinct = {p for i in range(STUDENTS) for p in prompts(i)} - {f"student {i} idea" for i in POOR}
    assert len(distinct) == 31
    assert len(cls.upstream.app.store.jobs()) == len(distinct)  # upstream creates == distinct requests
    assert sorted(refused) == [f"s{i:02d}" for i in POOR]
    assert all("$0.00 left" in message and "costs $0.40" in message for message in refused.values())

    storage = SqliteStorage(cls.data_dir)
    spent = {u.name: u.spent for u in storage.users()}
    rows = storage.videos()
    charged = [row for row in rows if row.charge]
    assert len(rows) == 2 * STUDENTS - len(POOR)
    assert len(charged) == len(distinct) and all(row.charge == PRICE for row in charged)
    assert sum(spent.values()) == pytest.approx(PRICE * len(distinct))  # one bill per distinct request
    for name, budget in budgets.items():
        assert budget is not None and spent[name] <= budget + 1e-9
        paid = sum(row.charge for row in rows if row.user == name)
        assert spent[name] == pytest.approx(paid)
    hits = [row for row in rows if row.hit]
    assert len(hits) == len(rows) - len(distinct) and all(row.charge == 0 for row in hits)
    storage.close()

    # isolation: another student's video is a 404 for retrieve, content and delete; each lists only their own
    with cls.http("s03") as mine, cls.http("s04") as theirs:
        own = ids["s03"]
        listed = mine.get("/videos", params={"limit": 100}).json()["data"]
        assert sorted(v["id"] for v in listed) == sorted(own)
        for path in (f"/videos/{own[0]}", f"/videos/{own[0]}/content"):
            assert theirs.get(path).status_code == 404
        gone = theirs.delete(f"/videos/{own[0]}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "video_not_found"
        assert mine.get(f"/videos/{own[0]}").json()["status"] == "completed"  # untouched
        content = mine.get(f"/videos/{own[0]}/content")
        assert content.status_code == 200 and content.content[4:8] == b"ftyp"
        unknown = theirs.get("/videos/video_nosuchthing")
        assert unknown.status_code == 404 and unknown.json()["error"]["message"].startswith("No video with id")

    # nothing leaks: the upstream key is in no answer, log record or file of the relay
    secret = UPSTREAM_KEY.encode()
    assert cls.seen and not any(secret in answer for answer in cls.seen)
    assert UPSTREAM_KEY not in caplog.text
    files = [p for p in cls.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "video.mp4" for p in files)
    assert not any(secret in p.read_bytes() for p in files)
    # students' tokens never went upstream: every request the upstream received carried the teacher's key only
    received = cls.upstream.received_headers  # type: ignore[attr-defined]
    assert len(received) > 2 * len(distinct)
    assert all(headers.get("authorization") == f"Bearer {UPSTREAM_KEY}" for headers in received)
    assert not any(token in str(headers) for token in cls.tokens.values() for headers in received)
