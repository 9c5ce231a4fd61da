"""When to poll again: the ETA from progress samples, server hints, and the backoff that aims at the finish;
status requests over loopback to the real local server: none goes before it is due (a poll hint is a floor),
requests due together share one list request, and a cancelled job's request is never sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sora_nb
from sora_nb import engine as engines
from sora_nb.client import AsyncVideosClient
from sora_nb.polling import (
    FIRST_DELAY,
    MAX_DELAY,
    MAX_HINT,
    MIN_DELAY,
    STRETCH,
    BatchPoller,
    ProgressTrend,
    next_delay,
)
from sora_nb.runner import get_runner
from sora_nb.server import ServerHandle


def trend(*samples: tuple[float, int | None]) -> ProgressTrend:
    result = ProgressTrend()
    for now, progress in samples:
        result.add(progress, now=now)
    return result


# ----- ProgressTrend ------------------------------------------------------------------------------------------
def test_eta_needs_two_samples() -> None:
    assert ProgressTrend().eta(now=0.0) is None
    assert trend((0.0, 10)).eta(now=1.0) is None
    assert trend((0.0, None), (1.0, None), (2.0, 10)).eta(now=2.0) is None  # None readings are ignored


def test_eta_from_a_steady_rise() -> None:
    rising = trend((0.0, 0), (10.0, 10), (20.0, 20))  # 1 % per second
    assert rising.eta(now=20.0) == pytest.approx(80.0)
    assert rising.eta(now=25.0) == pytest.approx(75.0)  # time since the last sample counts
    assert rising.eta(now=500.0) == 0.0  # overdue: never negative


def test_eta_uses_the_recent_rate() -> None:
    samples = [(float(t), t * 5) for t in range(6)] + [(float(t), 25 + (t - 5)) for t in range(6, 20)]
    slowed = trend(*samples)  # 5 %/s at first, then 1 %/s: only the last 8 samples count
    assert slowed.eta(now=19.0) == pytest.approx(100 - 39, rel=1e-6)


def test_eta_at_completion_is_zero() -> None:
    assert trend((0.0, 50), (5.0, 100)).eta(now=5.0) == 0.0


def test_flat_progress_has_no_eta() -> None:
    assert trend((0.0, 40), (5.0, 40), (10.0, 40)).eta(now=10.0) is None


def test_progress_that_has_not_moved_yet_counts_from_its_last_reading() -> None:
    waited = trend((0.0, 0), (5.0, 0), (10.0, 0), (12.0, 20))  # the rise began after t=10, not at t=0
    assert waited.eta(now=12.0) == pytest.approx(8.0)  # 10 %/s
    assert waited.span() == pytest.approx(2.0)
    assert ProgressTrend().span() == 0.0


def test_backwards_progress_resets() -> None:
    restarted = trend((0.0, 10), (10.0, 60), (20.0, 5))
    assert restarted.eta(now=20.0) is None  # one sample since the reset
    restarted.add(15, now=30.0)
    assert restarted.eta(now=30.0) == pytest.approx(85.0)  # 1 %/s from the new start, not 60 -> 15


def test_time_not_advancing_has_no_eta() -> None:
    assert trend((5.0, 10), (5.0, 20)).eta(now=5.0) is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=1e6),
    steps=st.lists(st.tuples(st.floats(min_value=0.01, max_value=100), st.integers(0, 30)), min_size=1, max_size=20),
    wait=st.floats(min_value=0, max_value=1000),
)
def test_eta_is_never_negative(start: float, steps: list[tuple[float, int]], wait: float) -> None:
    progress, now = 0, start
    readings = ProgressTrend()
    readings.add(progress, now=now)
    for dt, dp in steps:
        now, progress = now + dt, min(100, progress + dp)
        readings.add(progress, now=now)
    eta = readings.eta(now=now + wait)
    assert eta is None or eta >= 0.0
    if progress < 100 and eta is not None:
        assert eta <= (100 - progress) * (now - start) + 1e-6  # no slower than the slowest possible rate


# ----- next_delay ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("hint", "expected"), [(2.5, 2.5), (0.0, 0.05), (-3.0, 0.05), (0.3, 0.3), (600.0, MAX_HINT)])
def test_hint_is_honoured_clamped(hint: float, expected: float) -> None:
    assert next_delay(hint=hint, eta=None, elapsed=0.0) == expected
    assert next_delay(hint=hint, eta=0.0, elapsed=5000.0) == expected  # a hint wins over ETA and backoff


@settings(max_examples=200, deadline=None)
@given(
    hint=st.floats(min_value=0.05, max_value=MAX_HINT),
    eta=st.none() | st.floats(min_value=0, max_value=1e4),
    elapsed=st.floats(min_value=0, max_value=1e5),
)
def test_a_hint_is_a_floor_and_the_eta_never_pushes_past_the_backoff(
    hint: float, eta: float | None, elapsed: float
) -> None:
    delay = next_delay(hint=hint, eta=eta, elapsed=elapsed)
    assert delay >= hint  # never sooner than the server asked
    assert delay <= max(hint, STRETCH * MAX_DELAY)
    if eta is None:
        assert delay == hint


def test_with_a_hint_the_poll_aims_at_the_predicted_finish() -> None:
    # a hint of 0.4 s, a finish predicted in 2 s: one request at the finish, not five on the way there
    assert next_delay(hint=0.4, eta=2.0, elapsed=20.0) == pytest.approx(2.0)
    assert next_delay(hint=0.4, eta=0.1, elapsed=1.0) == pytest.approx(0.4)  # the floor still holds
    assert next_delay(hint=0.4, eta=1e4, elapsed=1.0) == pytest.approx(FIRST_DELAY + 0.1)  # within the backoff


def test_a_far_prediction_is_checked_halfway() -> None:
    # a finish 2 s ahead drawn from readings 1 s apart: look again at 1 s, then aim with a longer baseline
    assert next_delay(hint=0.4, eta=2.0, elapsed=20.0, span=1.0) == pytest.approx(1.0)
    assert next_delay(hint=None, eta=2.0, elapsed=20.0, span=1.0) == pytest.approx(1.0)
    assert next_delay(hint=None, eta=2.0, elapsed=20.0, span=3.0) == pytest.approx(2.0)
    assert next_delay(hint=1.5, eta=2.0, elapsed=20.0, span=1.0) == pytest.approx(1.5)  # the hint is a floor


def test_a_finish_just_past_the_backoff_is_waited_for() -> None:
    backoff = FIRST_DELAY + 2.5 / 10
    assert next_delay(hint=None, eta=1.4, elapsed=2.5) == pytest.approx(1.4)  # one request at the finish
    assert next_delay(hint=None, eta=STRETCH * backoff + 0.1, elapsed=2.5) == pytest.approx(backoff)


def test_backoff_grows_from_one_second_to_ten() -> None:
    delays = [next_delay(hint=None, eta=None, elapsed=t) for t in (0, 5, 10, 30, 60, 90, 120, 3600)]
    assert delays[0] == pytest.approx(FIRST_DELAY)
    assert delays == sorted(delays)
    assert delays[2] == pytest.approx(2.0)
    assert delays[-2:] == [MAX_DELAY, MAX_DELAY]


def test_delay_aims_at_the_eta() -> None:
    assert next_delay(hint=None, eta=0.5, elapsed=300.0) == pytest.approx(0.5)
    assert next_delay(hint=None, eta=0.0, elapsed=300.0) == MIN_DELAY
    assert next_delay(hint=None, eta=1000.0, elapsed=300.0) == MAX_DELAY


@settings(max_examples=200, deadline=None)
@given(eta=st.none() | st.floats(min_value=0, max_value=1e5), elapsed=st.floats(min_value=0, max_value=1e6))
def test_backoff_bounds(eta: float | None, elapsed: float) -> None:
    delay = next_delay(hint=None, eta=eta, elapsed=elapsed)
    assert MIN_DELAY <= delay <= MAX_DELAY
    assert delay <= STRETCH * (FIRST_DELAY + elapsed / 10) + 1e-9
    if eta is not None:
        assert delay <= max(MIN_DELAY, eta) + 1e-9  # never sleeps past the predicted finish
    else:
        assert delay >= FIRST_DELAY


@settings(max_examples=100, deadline=None)
@given(eta=st.none() | st.floats(min_value=0, max_value=100), a=st.floats(0, 1e4), b=st.floats(0, 1e4))
def test_backoff_is_monotonic_in_elapsed(eta: float | None, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert next_delay(hint=None, eta=eta, elapsed=low) <= next_delay(hint=None, eta=eta, elapsed=high)


# ----- BatchPoller and the poll loop, over loopback -----------------------------------------------------------
class Recording(httpx.AsyncBaseTransport):
    """Real HTTP through httpx's own transport, noting when each request went out and its answer came back."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.log: list[tuple[float, float, httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = await self.inner.handle_async_request(request)
        self.log.append((sent, time.monotonic(), request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _videos(client: AsyncVideosClient, n: int) -> list[str]:
    return [(await client.create(f"poller test clip {i}")).id for i in range(n)]


def test_a_request_waits_until_it_is_due(server: ServerHandle) -> None:
    async def main() -> None:
        recording = Recording()
        async with AsyncVideosClient(server.base_url, server.key, transport=recording) as client:
            (video_id,) = await _videos(client, 1)
            poller = BatchPoller(client)
            due = time.monotonic() + 0.4
            asked = asyncio.ensure_future(poller.status(video_id, due))
            await asyncio.sleep(0.2)
            assert client.requests["retrieve"] == 0  # not yet due
            video, moment = await asked
            assert video.id == video_id and client.requests["retrieve"] == 1
            sent, _, request, _ = recording.log[-1]
            assert request.method == "GET" and sent >= due and moment >= due

    asyncio.run(main())


@pytest.mark.parametrize(
    ("spacing", "lists", "retrieves"),
    [(0.02, 1, 0), (0.2, 0, 3)],
    ids=["due-together-share-one-list-request", "due-apart-go-separately"],
)
def test_requests_go_together_only_when_due_together(
    server: ServerHandle, spacing: float, lists: int, retrieves: int
) -> None:
    async def main() -> None:
        recording = Recording()
        async with AsyncVideosClient(server.base_url, server.key, transport=recording) as client:
            ids = await _videos(client, 3)
            poller = BatchPoller(client, window=0.05)
            start = time.monotonic() + 0.1
            dues = [start + i * spacing for i in range(3)]
            readings = await asyncio.gather(*(poller.status(i, d) for i, d in zip(ids, dues, strict=True)))
            assert [video.id for video, _ in readings] == ids
            assert client.requests["list"] == lists and client.requests["retrieve"] == retrieves
            sends = sorted(sent for sent, _, request, _ in recording.log if request.method == "GET")
            if lists:  # one request, at the latest due time, at most a window after the earliest (+ loop slack)
                assert len(sends) == 1 and sends[0] >= max(dues) and sends[0] - min(dues) < 0.05 + 0.1
            else:  # nobody asked before its time
                assert all(sent >= due for sent, due in zip(sends, dues, strict=True))

    asyncio.run(main())


def test_a_cancelled_wait_sends_nothing(server: ServerHandle) -> None:
    async def main() -> None:
        async with AsyncVideosClient(server.base_url, server.key) as client:
            (video_id,) = await _videos(client, 1)
            poller = BatchPoller(client)
            asked = asyncio.ensure_future(poller.status(video_id, time.monotonic() + 0.2))
            await asyncio.sleep(0.05)
            asked.cancel()
            await asyncio.sleep(0.4)
            assert asked.cancelled() and client.requests["retrieve"] == 0 and client.requests["list"] == 0

    asyncio.run(main())


def test_a_job_never_polls_sooner_than_the_servers_hint(configured: Callable[..., ServerHandle]) -> None:
    configured(speed=1.0)  # a 4 s clip in about 3.5 s, with openai-poll-after-ms on every unfinished answer
    engine = get_runner().submit(engines.get_engine()).result()
    exchanges: list[tuple[str, float, float | None]] = []  # (kind, time, hint in s)

    async def on_request(request: httpx.Request) -> None:
        if request.method == "GET" and not request.url.path.endswith("/content"):
            exchanges.append(("ask", time.monotonic(), None))

    async def on_response(response: httpx.Response) -> None:
        hint = response.headers.get("openai-poll-after-ms")
        exchanges.append(("answer", time.monotonic(), None if hint is None else int(hint) / 1000))

    engine.client.wire.http.event_hooks = {"request": [on_request], "response": [on_response]}
    sora_nb.submit("a kite over dunes", seconds=4).result(timeout=60)
    asks = 0
    floor_until = 0.0
    for kind, moment, hint in exchanges:
        if kind == "ask":
            asks += 1
            assert moment >= floor_until, f"status request {moment - floor_until:.3f} s before the hint allowed"
        elif hint is not None:
            floor_until = moment + hint
    assert asks >= 2  # the job was polled while running, not only seen done
