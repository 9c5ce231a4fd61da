"""parse_video and its helpers: every API dialect's video record read into one normalised ``Video``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sora_nb.errors import ResponseFormatError, SoraError
from sora_nb.video import (
    TERMINAL,
    Video,
    VideoError,
    normalise_status,
    parse_progress,
    parse_seconds,
    parse_time,
    parse_video,
)

CANONICAL = {"queued", "in_progress", "completed", "failed", "cancelled", "expired"}
DIALECT_WORDS = {
    "queued": ["queued", "pending", "submitted", "not_start", "preparing", "unknown", "created", "starting"],
    "in_progress": ["processing", "in_progress", "running", "generating"],
    "completed": ["completed", "complete", "success", "succeeded", "finished"],
    "failed": ["failed", "failure", "fail", "error"],
    "cancelled": ["cancelled", "canceled"],
    "expired": ["expired"],
}
STATUS_CASES = [(word, status) for status, words in DIALECT_WORDS.items() for word in words]


def record(**fields: Any) -> dict[str, Any]:
    """A minimal valid record with ``fields`` on top."""
    return {"id": "video_123", "status": "queued", **fields}


# ----- statuses -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("word", "expected"), STATUS_CASES)
def test_normalise_status_maps_every_dialect_word(word: str, expected: str) -> None:
    assert normalise_status(word) == expected
    video = parse_video(record(status=word))
    assert video.status == expected
    assert video.raw_status == word
    assert video.done == (expected in TERMINAL)


@pytest.mark.parametrize(
    ("word", "expected"),
    [("SUCCESS", "completed"), ("In Progress", "in_progress"), ("not-start", "queued"), ("  Failed  ", "failed")],
)
def test_normalise_status_ignores_case_spaces_and_dashes(word: str, expected: str) -> None:
    assert normalise_status(word) == expected


def test_terminal_statuses() -> None:
    assert set(TERMINAL) == {"completed", "failed", "cancelled", "expired"}
    for word, status in STATUS_CASES:
        assert parse_video(record(status=word)).done is (status in TERMINAL)


@pytest.mark.parametrize("word", ["mystery", "IN_QUEUE_MAYBE", "rendering-frames", "42"])
def test_unknown_status_words_are_not_terminal(word: str) -> None:
    fresh = parse_video(record(status=word))
    assert fresh.status == "queued"
    assert fresh.raw_status == word
    assert fresh.done is False
    moving = parse_video(record(status=word, progress=30))
    assert moving.status == "in_progress"
    assert moving.done is False


# ----- progress -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (45, 45),
        (0, 0),
        (100, 100),
        ("45%", 45),
        (" 45 % ", 45),
        ("45", 45),
        (45.7, 45),
        ("45.5%", 45),
        (None, None),
        (-5, 0),
        (150, 100),
        ("150%", 100),
        ("abc", None),
        ("", None),
        (True, None),
        (float("inf"), None),
        ([45], None),
        ({"value": 45}, None),
    ],
)
def test_parse_progress(value: Any, expected: int | None) -> None:
    assert parse_progress(value) == expected


def test_progress_missing_from_record_is_none() -> None:
    assert parse_video(record()).progress is None
    assert parse_video(record(progress="45%")).progress == 45


# ----- times --------------------------------------------------------------------------------------------------
T = 1_712_345_678  # 2024-04-05T19:34:38Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T, T),
        (float(T) + 0.9, T),
        (str(T), T),
        (T * 1000, T),  # milliseconds are detected
        (T * 1000 + 999, T),
        ("2024-04-05T19:34:38Z", T),
        ("2024-04-05T19:34:38.250Z", T),
        ("2024-04-05T21:34:38+02:00", T),
        ("2024-04-05T19:34:38", T),  # naive means UTC
        ("2024-04-05 19:34:38Z", T),
        (0, 0),
        (-1, None),
        (None, None),
        ("", None),
        ("   ", None),
        ("yesterday", None),
        ("45%", None),
        (True, None),
        ({"t": T}, None),
    ],
)
def test_parse_time(value: Any, expected: int | None) -> None:
    assert parse_time(value) == expected


def test_times_in_record() -> None:
    video = parse_video(record(created_at=T, completed_at="2024-04-05T19:34:38Z", expires_at=(T + 3600) * 1000))
    assert (video.created_at, video.completed_at, video.expires_at) == (T, T, T + 3600)


# ----- seconds ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4, "4"),
        ("4", "4"),
        ("10.0", "10"),
        (10.0, "10"),
        ("5.041", "5.041"),
        (5.041, "5.041"),
        (8.5, "8.5"),
        (0, "0"),
        (-1, None),
        ("abc", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_seconds(value: Any, expected: str | None) -> None:
    assert parse_seconds(value) == expected


def test_seconds_falls_back_to_duration() -> None:
    assert parse_video(record(duration=5)).seconds == "5"
    assert parse_video(record(duration="10.0")).seconds == "10"
    assert parse_video(record(seconds="8", duration=5)).seconds == "8"
    assert parse_video(record(seconds=None, duration=5)).seconds == "5"
    assert parse_video(record()).seconds is None


# ----- other fields -------------------------------------------------------------------------------------------
def test_openai_record_is_read_whole() -> None:
    data = {
        "id": "video_68d7",
        "object": "video",
        "status": "completed",
        "progress": 100,
        "model": "sora-2",
        "prompt": "a cat",
        "size": "1280x720",
        "seconds": "8",
        "created_at": T,
        "completed_at": T + 60,
        "expires_at": T + 86400,
        "remixed_from_video_id": "video_old",
        "error": None,
        "poll_after_seconds": 2.5,
    }
    assert parse_video(data) == Video(
        id="video_68d7",
        status="completed",
        raw_status="completed",
        progress=100,
        model="sora-2",
        prompt="a cat",
        size="1280x720",
        seconds="8",
        created_at=T,
        completed_at=T + 60,
        expires_at=T + 86400,
        remixed_from="video_old",
        error=None,
        url=None,
        poll_after=2.5,
    )


def test_width_and_height_become_size() -> None:
    assert parse_video(record(width=1280, height=720)).size == "1280x720"
    assert parse_video(record(width="720", height=1280.0)).size == "720x1280"
    assert parse_video(record(size="1024x1792", width=1, height=2)).size == "1024x1792"
    assert parse_video(record(width=1280)).size is None


def test_task_id_instead_of_id() -> None:
    video = parse_video({"task_id": "task_abc", "status": "IN_PROGRESS", "progress": "45%"})
    assert (video.id, video.status, video.progress) == ("task_abc", "in_progress", 45)
    assert parse_video({"id": "v1", "task_id": "task_abc", "status": "queued"}).id == "v1"
    assert parse_video({"id": 42, "status": "queued"}).id == "42"


def test_wrapped_record_is_unwrapped() -> None:
    video = parse_video({"code": "success", "data": {"task_id": "task_1", "status": "success"}})
    assert (video.id, video.status) == ("task_1", "completed")


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"url": "https://cdn.example/v.mp4"}, "https://cdn.example/v.mp4"),
        ({"video_url": "https://cdn.example/v.mp4"}, "https://cdn.example/v.mp4"),
        ({"result_url": "http://cdn.example/v.mp4"}, "http://cdn.example/v.mp4"),
        ({"output_url": "https://cdn.example/o.mp4"}, "https://cdn.example/o.mp4"),
        ({"metadata": {"url": "https://cdn.example/m.mp4"}}, "https://cdn.example/m.mp4"),
        ({"unsigned_urls": ["https://cdn.example/u.mp4", "https://cdn.example/2.mp4"]}, "https://cdn.example/u.mp4"),
        ({"url": "not a url", "video_url": "https://cdn.example/v.mp4"}, "https://cdn.example/v.mp4"),
        ({"url": "https://a.example/1", "unsigned_urls": ["https://b.example/2"]}, "https://a.example/1"),
        ({"unsigned_urls": []}, None),
        ({"unsigned_urls": [None]}, None),
        ({"metadata": "https://cdn.example/m.mp4"}, None),
        ({"url": 42}, None),
        ({}, None),
    ],
)
def test_result_url(fields: dict[str, Any], url: str | None) -> None:
    assert parse_video(record(status="completed", **fields)).url == url


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "moderation_blocked", "message": "no"}, VideoError("moderation_blocked", "no")),
        ({"type": "server_error", "message": "boom"}, VideoError("server_error", "boom")),
        ({"code": 500, "message": "boom"}, VideoError("500", "boom")),
        ({"message": "boom"}, VideoError("error", "boom")),
        ({}, VideoError("error", "the server gave no message")),
        ("quota exhausted", VideoError("error", "quota exhausted")),
        ("", None),
        (None, None),
        (17, None),
    ],
)
def test_error_as_object_or_string(error: Any, expected: VideoError | None) -> None:
    assert parse_video(record(status="failed", error=error)).error == expected


def test_poll_after_hint() -> None:
    assert parse_video(record(poll_after_seconds=3)).poll_after == 3.0
    assert parse_video(record(poll_after_seconds="1.5")).poll_after == 1.5
    assert parse_video(record(poll_after_seconds=-1)).poll_after is None
    assert parse_video(record()).poll_after is None


# ----- unreadable records -------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [None, [], ["id"], "video_1", 42, True])
def test_non_objects_are_refused(data: Any) -> None:
    with pytest.raises(ResponseFormatError, match="JSON object"):
        parse_video(data)


@pytest.mark.parametrize(
    "data",
    [{"status": "queued"}, {"id": "", "status": "queued"}, {"id": None, "status": "queued"}, {"id": True}],
)
def test_missing_id_is_named(data: dict[str, Any]) -> None:
    with pytest.raises(ResponseFormatError, match="'id'"):
        parse_video(data)


@pytest.mark.parametrize("status", [None, "", "   ", 3, ["queued"], {"state": "queued"}])
def test_missing_status_is_named(status: Any) -> None:
    data: dict[str, Any] = {"id": "video_9"} if status is None else {"id": "video_9", "status": status}
    with pytest.raises(ResponseFormatError, match="'status'") as caught:
        parse_video(data)
    assert "video_9" in str(caught.value)
    assert isinstance(caught.value, SoraError)


# ----- property: any JSON value gives a Video or ResponseFormatError -------------------------------------------
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_numberish = (
    st.integers(min_value=-(2**40), max_value=2**50)
    | st.floats(allow_nan=False)
    | st.builds(
        "{}{}{}".format,
        st.integers(min_value=-(10**6), max_value=10**15),
        st.sampled_from(["", ".0", ".5", ".041"]),
        st.sampled_from(["", "%", " %"]),
    )
)
_small = (
    _scalars
    | st.lists(_scalars, max_size=2)
    | st.dictionaries(st.sampled_from(["url", "code", "message", "type", "x"]), _scalars, max_size=2)
)
_isotime = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9998, 12, 31)).map(
    lambda d: d.isoformat() + "Z"
)
_url = st.builds("{}{}".format, st.sampled_from(["https://", "http://", "ftp://", ""]), st.text(max_size=8))
_words = st.sampled_from([w for w, _ in STATUS_CASES]) | st.text(max_size=12)
_fields = {
    "progress": _numberish | _small,
    "created_at": _numberish | _isotime | _small,
    "completed_at": _numberish | _isotime | _small,
    "expires_at": _numberish | _isotime | _small,
    "seconds": _numberish | _small,
    "duration": _numberish | _small,
    "width": _numberish | _small,
    "height": _numberish | _small,
    "size": _small,
    "error": _small,
    "url": _url | _small,
    "metadata": st.fixed_dictionaries({"url": _url | _small}) | _small,
    "unsigned_urls": st.lists(_url | _small, max_size=2) | _small,
    "poll_after_seconds": _numberish | _small,
}
# Mostly-readable records (id and status present) and records whose every key may be missing or of any type.
_readable = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=10), "status": _words}, optional={"task_id": st.text(max_size=10), **_fields}
)
_anything = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10) | st.integers(min_value=-(2**63), max_value=2**63) | _small,
        "task_id": st.text(max_size=10) | _small,
        "status": _words | _small,
        **_fields,
    },
)
_record = _readable | _anything | st.fixed_dictionaries({"data": _readable | _anything})


def _check(data: Any) -> None:
    try:
        video = parse_video(data)
    except ResponseFormatError:
        return
    assert isinstance(video, Video)
    assert isinstance(video.id, str) and video.id
    assert video.status in CANONICAL
    assert isinstance(video.raw_status, str)
    assert video.progress is None or (isinstance(video.progress, int) and 0 <= video.progress <= 100)
    for moment in (video.created_at, video.completed_at, video.expires_at):
        assert moment is None or (isinstance(moment, int) and moment >= 0)
    assert video.seconds is None or isinstance(video.seconds, str)
    assert video.url is None or isinstance(video.url, str)
    assert video.poll_after is None or video.poll_after >= 0
    assert video.done == (video.status in TERMINAL)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_any_json_value_parses_or_raises_response_format_error(data: Any) -> None:
    _check(data)


@settings(max_examples=200, deadline=None)
@given(_record)
def test_record_like_objects_parse_or_raise_response_format_error(data: Any) -> None:
    _check(data)
    _check(json.loads(json.dumps(data)))  # also after a JSON round trip, as from a real response


# ----- edge cases that once crashed or misparsed -----------------------------------------------------------------
def test_huge_integer_progress_is_not_an_overflow() -> None:
    _check(json.loads('{"id": "v", "status": "queued", "progress": 1' + "0" * 400 + "}"))


@pytest.mark.parametrize("field", ["progress", "created_at", "width"])
def test_long_digit_string_is_not_an_overflow(field: str) -> None:
    _check({"id": "v", "status": "queued", "height": 720, field: "9" * 400})


def test_long_digit_string_seconds_is_none() -> None:
    assert parse_seconds("9" * 400) is None


def test_iso_time_before_epoch_is_none() -> None:
    assert parse_time("1960-01-01T00:00:00Z") is None
