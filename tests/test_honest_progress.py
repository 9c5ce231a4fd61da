"""Honest progress (issue 14 item 8): an engine that gives no real percentage gets no percentage and an ETA
drawn from how long the same backend took for similar past jobs; real percentages behave as before.

The main tests run jobs against the local server playing each engine over loopback; the detection rules and
the history arithmetic have unit tests of their own below.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import sora_nb
from sora_nb import polling
from sora_nb.cache import VideoCache
from sora_nb.jobs import Job
from sora_nb.pace import HISTORY_JOBS, Pace, PastJobs, likeness, past_jobs
from sora_nb.polling import ProgressTrend
from sora_nb.server import ServerHandle
from sora_nb.video import Video

Configured = Callable[..., ServerHandle]
RUNNING = ("queued", "in_progress")
CLIP = {"size": "1280x720", "seconds": 8}  # about 2 s at speed 4: several polls while it runs


@dataclass(frozen=True)
class Seen:
    """One state of a job, as an observer saw it."""

    status: str
    progress: int | None
    eta: float | None
    eta_source: str | None
    history: PastJobs | None
    reported: int | None  # what the engine said (video.progress)


def run(prompt: str, **params: object) -> tuple[Job, list[Seen]]:
    """Submit a job and wait for it, with every state it went through."""
    seen: list[Seen] = []

    def record(j: Job) -> None:
        reported = j.video.progress if j.video is not None else None
        seen.append(Seen(j.status, j.progress, j.eta, j.eta_source, j.history, reported))

    job = sora_nb.submit(prompt, **{**CLIP, **params})  # type: ignore[arg-type]
    job.observe(record)
    job.result(timeout=120)
    return job, seen


def running(seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if s.status in RUNNING]


# ----- engines without a real percentage --------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["aquiles", "sglang", "vllm-omni"])
def test_no_real_percentage_means_no_progress_then_an_eta_from_past_jobs(configured: Configured, dialect: str) -> None:
    handle = configured(dialect=dialect, speed=4.0)
    first, seen = run("a lighthouse in fog")
    states = running(seen)
    assert states, "the job was never seen running"
    assert all(s.progress is None for s in states)  # the bar is indeterminate, whatever the engine said
    assert all(s.eta is None and s.eta_source is None for s in states)  # no past jobs: no ETA, only elapsed
    if dialect == "aquiles":
        assert any(s.reported not in (None, 0, 100) for s in states)  # it did report made-up numbers
    assert first.progress == 100 and first.status == "completed"

    cache = VideoCache()
    record = cache.get(str(first.id)).record  # type: ignore[union-attr]
    assert record["endpoint"] == handle.base_url and record["duration"] > 0  # measured, kept for later ETAs

    second, _ = run("a lighthouse in fog, at dawn")  # the same size and length on the same backend
    third, seen = run("a lighthouse in fog, at night")
    from_history = [s for s in running(seen) if s.eta_source == "history"]
    assert from_history, "no ETA was drawn from the two past jobs"
    assert all(s.eta is not None and s.eta > 0 and s.progress is None for s in from_history)
    durations = [cache.get(str(j.id)).record["duration"] for j in (first, second)]  # type: ignore[union-attr]
    assert third.history == PastJobs(seconds=statistics.median(durations), jobs=2)


def test_past_jobs_of_another_size_are_not_similar(configured: Configured) -> None:
    configured(dialect="aquiles", speed=4.0)
    run("a fox in snow", size="720x1280")
    job, seen = run("a fox in snow", size="1280x720")
    assert all(s.eta is None for s in running(seen))
    assert job.history is None


# ----- real percentages: today's behaviour --------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["openai", "unsloth"])
def test_real_percentages_are_shown_as_they_are(configured: Configured, dialect: str) -> None:
    configured(dialect=dialect, speed=4.0)
    run("a kite over a beach")  # a past job: history exists, and is not used
    job, seen = run("a kite over a beach, windy")
    states = [s for s in running(seen) if s.reported is not None]
    assert all(s.progress == s.reported for s in states)  # the engine's number, unchanged
    assert any(0 < (s.progress or 0) < 100 for s in states)
    assert any(s.eta is not None and s.eta_source == "progress" for s in states)  # the trend's ETA, as before
    assert all(s.eta_source != "history" for s in seen)
    assert job.history is None  # never looked for


# ----- what the readings show, whatever the profile says --------------------------------------------------------
def test_a_percentage_stuck_for_long_stops_counting(configured: Configured, monkeypatch: pytest.MonkeyPatch) -> None:
    """Aquiles behind the generic profile: its 90 % sits there for most of the render and stops being shown."""
    monkeypatch.setattr(polling, "STUCK_AFTER", 1.0)  # the render is seconds long here, not minutes
    configured(dialect="aquiles", speed=2.0)
    sora_nb.configure(provider="openai")
    _, seen = run("a glacier calving", seconds=20)
    states = [s for s in running(seen) if s.status == "in_progress"]
    shown_90 = next(i for i, s in enumerate(states) if s.progress == 90)  # believed at first
    later = states[shown_90 + 1 :]
    assert any(s.progress is None and s.reported == 90 for s in later)
    assert all(s.eta is None for s in later if s.progress is None)  # no trend ETA from a stuck number


def test_a_zero_that_never_moves_is_no_percentage(configured: Configured, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM-Omni behind the generic `auto` profile: in_progress at 0 % until it jumps to 100."""
    monkeypatch.setattr(polling, "STUCK_AFTER", 1.0)
    configured(dialect="vllm-omni", speed=3.0)
    sora_nb.configure(provider="auto")
    _, seen = run("a tram in the rain", seconds=20)
    states = [s for s in running(seen) if s.status == "in_progress"]
    assert states[0].progress == 0  # at first a 0 is a 0
    assert any(s.progress is None and s.reported == 0 for s in states[1:])


# ----- unit tests: the detection rules and the arithmetic of past jobs ------------------------------------------
def trend(*readings: tuple[float, int]) -> ProgressTrend:
    result = ProgressTrend()
    for moment, progress in readings:
        result.add(progress, moment)
    return result


def test_a_faked_climb_that_then_holds_is_stuck() -> None:
    climbed = trend(*[(0.5 * i, 10 * i) for i in range(10)])  # 0 -> 90 in 4.5 s, then held
    assert not climbed.stuck(now=10.0)  # held 5.5 s: not longer than the climb took, nor STUCK_AFTER
    assert not climbed.stuck(now=4.5 + polling.STUCK_AFTER)
    assert climbed.stuck(now=4.5 + polling.STUCK_AFTER + 0.1)


def test_a_held_value_counts_against_its_own_rise() -> None:
    slow = trend((0.0, 0), (60.0, 40))  # a minute to reach 40 %: a minute at 40 is still a percentage
    assert not slow.stuck(now=119.0)
    assert slow.stuck(now=121.0)


def test_zero_then_a_jump_is_stuck_after_stuck_after() -> None:
    zero = trend((0.0, 0), (5.0, 0), (9.0, 0))
    assert not zero.stuck(now=polling.STUCK_AFTER - 0.1)
    assert zero.stuck(now=polling.STUCK_AFTER + 0.1)
    zero.add(100, 30.0)
    assert not zero.stuck(now=100.0)  # finished is finished


def test_steady_real_progress_is_never_stuck() -> None:
    steady = ProgressTrend()
    for second in range(0, 300, 3):  # 1 % every 3 s, read every 3 s
        steady.add(second // 3, float(second))
        assert not steady.stuck(now=second + 2.9)


def test_progress_that_goes_back_starts_the_rise_anew() -> None:
    restarted = trend((0.0, 0), (50.0, 80), (60.0, 10))  # a retried render
    assert not restarted.stuck(now=60.0 + polling.STUCK_AFTER)  # 10 % reached at once: STUCK_AFTER applies
    assert restarted.stuck(now=60.0 + polling.STUCK_AFTER + 0.1)


def video(status: str = "in_progress", progress: int | None = 40, **fields: object) -> Video:
    return Video(id="v1", status=status, raw_status=status, progress=progress, **fields)  # type: ignore[arg-type]


def test_the_profile_decides_before_the_readings() -> None:
    fake = Pace()
    fake.bind("fake", lambda: None, fresh=True)
    reading = fake.read(video(progress=40), 1.0)
    assert reading.progress is None and reading.eta is None and reading.source is None
    real = Pace()
    real.bind("real", lambda: None, fresh=True)
    real.read(video(progress=10), 1.0)
    reading = real.read(video(progress=20), 2.0)
    assert reading.progress == 20 and reading.source == "progress"


def test_the_lookup_is_taken_once_and_only_without_a_real_percentage() -> None:
    calls: list[int] = []
    real = Pace()
    real.bind("real", lambda: calls.append(1) or None, fresh=True)
    real.read(video(progress=10), 1.0)
    assert real.take_lookup() is None
    jump = Pace()
    jump.bind("jump", lambda: PastJobs(30.0, 2), fresh=True)
    jump.read(video(progress=0))
    lookup = jump.take_lookup()
    assert lookup is not None and jump.take_lookup() is None
    jump.past = lookup()
    assert jump.history_eta() == pytest.approx(30.0, abs=1.0)
    assert calls == []


def test_a_history_eta_counts_down_and_ends_at_the_typical_time() -> None:
    pace = Pace()
    pace.bind("jump", lambda: None, fresh=True)
    pace.past = PastJobs(seconds=80.0, jobs=3)
    assert pace.read(video(progress=0), 1000.0).eta == pytest.approx(80.0)
    reading = pace.read(video(progress=0), 1030.0)
    assert reading.eta == pytest.approx(50.0) and reading.source == "history"
    assert pace.read(video(progress=0), 1090.0).eta is None  # slower than the past jobs: no "0 s left" for ever


def test_an_attached_job_is_as_old_as_its_server_says() -> None:
    pace = Pace()
    pace.bind("fake", lambda: None, fresh=False)
    pace.past = PastJobs(seconds=100.0, jobs=1)
    created = int(time.time()) - 40
    assert pace.read(video(progress=90, created_at=created)).eta == pytest.approx(60.0, abs=2.0)
    done = video("completed", 100, created_at=created, completed_at=created + 95)
    pace.read(done)
    assert pace.duration(done) == 95.0  # the server's times: this job did not see its start


def test_a_create_answered_with_the_finished_video_records_no_duration_of_its_own() -> None:
    pace = Pace()
    pace.bind("jump", lambda: None, fresh=True)
    done = video("completed", 100)  # a synchronous engine: the create's answer is the finished video
    pace.read(done, 5.0)
    assert pace.duration(done) is None  # not 0 s: how long the request took is not what later ETAs need
    fresh = Pace()
    fresh.read(video("queued", 0), 5.0)
    fresh.read(video("completed", 100), 17.5)
    assert fresh.duration(video("completed", 100)) == 12.5


def test_likeness_is_model_size_seconds_and_steps() -> None:
    base = {"prompt": "a", "model": "wan", "size": "832x480", "seconds": "4"}
    assert likeness(base) == likeness({**base, "prompt": "b", "seed": 7})
    assert likeness(base) != likeness({**base, "size": "480x832"})
    assert likeness({**base, "steps": 20}) == likeness({**base, "extra": {"num_inference_steps": 20}})
    assert likeness({**base, "steps": 20}) != likeness({**base, "steps": 40})
    assert likeness({"prompt": "a"}) != likeness({"prompt": "a", "source": "video_1"})  # a remix is no new video


def saved(cache: VideoCache, video_id: str, request: dict[str, str], **record: object) -> None:
    """A cached video with its record's ``endpoint``, ``duration`` and ``at`` (saved_at) as given."""
    cache.save_record(Video(id=video_id, status="completed", raw_status="completed"), request=request)
    (cache.directory(video_id) / "video.mp4").write_bytes(b"mp4")
    path = cache.directory(video_id) / "video.json"
    data = {**json.loads(path.read_text()), **record}
    data["saved_at"] = data.pop("at")
    path.write_text(json.dumps(data))


def test_past_jobs_is_the_median_of_the_recent_similar_ones(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    request = {"prompt": "p", "size": "832x480", "seconds": "4"}
    durations = [50.0, 10.0, 30.0, 20.0, 40.0, 1000.0]  # the oldest (1000) is beyond HISTORY_JOBS
    for n, duration in enumerate(reversed(durations)):
        saved(cache, f"v{n}", request, endpoint="http://e/v1", duration=duration, at=1_700_000_000 + n)
    saved(cache, "elsewhere", request, endpoint="http://elsewhere/v1", duration=1.0, at=1_800_000_000)
    found = past_jobs(cache, "http://e/v1", {**request, "prompt": "q"})
    assert found == PastJobs(seconds=30.0, jobs=HISTORY_JOBS)
    assert past_jobs(cache, "http://e/v1", {**request, "seconds": "8"}) is None


def test_a_record_with_a_bad_duration_keeps_the_rest(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    cache.save_record(Video(id="v", status="completed", raw_status="completed"), request={"prompt": "p"})
    (cache.directory("v") / "video.mp4").write_bytes(b"mp4")
    path = cache.directory("v") / "video.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "duration": "slow", "endpoint": 3}))
    hit = cache.get("v")
    assert hit is not None and hit.record["duration"] is None and hit.record["endpoint"] == ""
    assert hit.request == {"prompt": "p"}
