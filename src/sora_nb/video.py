"""The normalised ``Video`` record, read tolerantly from any dialect's JSON."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sora_nb.errors import ResponseFormatError

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled", "expired"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "expired"})
SHOWN_STATUS = 60  # characters of a server's status word (``raw_status``) quoted in a message
_STATUS_WORDS: dict[str, Status] = {
    **dict.fromkeys(
        (
            "queued",
            "pending",
            "submitted",
            "not_start",
            "not_started",
            "preparing",
            "unknown",
            "created",
            "starting",
            "waiting",
        ),
        "queued",
    ),
    **dict.fromkeys(("processing", "in_progress", "running", "generating", "started"), "in_progress"),
    **dict.fromkeys(("completed", "complete", "success", "succeeded", "finished", "done"), "completed"),
    **dict.fromkeys(("failed", "failure", "fail", "error", "rejected"), "failed"),
    **dict.fromkeys(("cancelled", "canceled"), "cancelled"),
    "expired": "expired",
}
_URL_FIELDS = ("url", "video_url", "result_url", "output_url")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%?\s*$")


@dataclass(frozen=True)
class VideoError:
    """Why a job failed, as the server said it."""

    code: str
    message: str


@dataclass(frozen=True)
class Video:
    """A video job as any dialect reports it, normalised.

    ``status`` is one of queued, in_progress, completed, failed, cancelled, expired (``raw_status`` keeps the
    server's word); ``progress`` is 0-100 or None; times are Unix seconds; ``seconds`` is text ("4", "5.041").
    """

    id: str
    status: Status
    raw_status: str
    progress: int | None = None
    model: str | None = None
    prompt: str | None = None
    size: str | None = None
    seconds: str | None = None
    created_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    remixed_from: str | None = None
    error: VideoError | None = None
    url: str | None = None
    poll_after: float | None = None
    shared: bool = False
    """The service says another request already paid for this job (a class relay's ``x-sora-nb-cache: hit``)."""

    @property
    def done(self) -> bool:
        """Whether the status is terminal."""
        return self.status in TERMINAL


def _word(raw: str) -> str:
    return raw.strip().lower().replace(" ", "_").replace("-", "_")


def normalise_status(raw: str, progress: int | None = None) -> Status:
    """The canonical status for a server's word; unknown words count as not finished."""
    word = _word(raw)
    if word in _STATUS_WORDS:
        return _STATUS_WORDS[word]
    return "in_progress" if progress else "queued"


def _number(value: Any) -> float | None:
    """A finite number from an int, float or numeric text ("45", "45%"); None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and (match := _NUMBER.match(value)):
            number = float(match.group(1))
        else:
            return None
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_progress(value: Any) -> int | None:
    """Progress from 45, 45.5 or "45%", clamped to 0-100; None if unreadable (fractions are not guessed)."""
    number = _number(value)
    return None if number is None else max(0, min(100, int(number)))


def parse_time(value: Any) -> int | None:
    """Unix seconds from an int, a float, a numeric string or an ISO 8601 string (milliseconds are detected)."""
    number = _number(value)
    if number is not None and not (isinstance(value, str) and "%" in value):
        seconds = number / 1000 if number > 1e11 else number
        return int(seconds) if seconds >= 0 else None
    if isinstance(value, str) and value.strip():
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        stamp = int(parsed.timestamp())
        return stamp if stamp >= 0 else None
    return None


def parse_seconds(value: Any) -> str | None:
    """Clip seconds as text: 4 -> "4", "10.0" -> "10", 5.041 -> "5.041"."""
    number = _number(value)
    if number is None or number < 0:
        return None
    return f"{number:.3f}".rstrip("0").rstrip(".")


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _http_url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _result_url(data: Mapping[str, Any]) -> str | None:
    metadata = data.get("metadata")
    urls = data.get("unsigned_urls")
    candidates = [data.get(name) for name in _URL_FIELDS]
    candidates.append(metadata.get("url") if isinstance(metadata, Mapping) else None)
    candidates.append(urls[0] if isinstance(urls, list) and urls else None)
    return next((url for url in map(_http_url, candidates) if url), None)


def _error(value: Any) -> VideoError | None:
    if isinstance(value, Mapping):
        code = _text(value.get("code")) or _text(value.get("type")) or "error"
        message = _text(value.get("message")) or "the server gave no message"
        return VideoError(code=code, message=message)
    if isinstance(value, str) and value:
        return VideoError(code="error", message=value)
    return None


def _unwrap(data: Any) -> Any:
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping) and "id" not in data:
        return data["data"]  # some relays wrap the record: {"code": ..., "data": {...}}
    return data


def is_video_record(data: Any) -> bool:
    """Whether a body is a video record: an ``id`` and a known status word (vLLM-Omni answers a failed job's
    retrieve with HTTP 500 and the job as body; an error envelope has neither)."""
    data = _unwrap(data)
    if not isinstance(data, Mapping) or not (_text(data.get("id")) or _text(data.get("task_id"))):
        return False
    status = data.get("status")
    return isinstance(status, str) and _word(status) in _STATUS_WORDS


def parse_video(data: Any) -> Video:
    """A ``Video`` from a response body; ``ResponseFormatError`` naming the field if it cannot be read."""
    data = _unwrap(data)
    if not isinstance(data, Mapping):
        raise ResponseFormatError(f"expected a JSON object for a video, got {type(data).__name__}")
    video_id = _text(data.get("id")) or _text(data.get("task_id"))
    if not video_id:
        raise ResponseFormatError("the video record has no 'id' (nor 'task_id') field")
    raw_status = data.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip():
        raise ResponseFormatError(f"the video record {video_id[:80]!r} has no readable 'status' field")
    progress = parse_progress(data.get("progress"))
    size = _text(data.get("size"))
    width, height = _number(data.get("width")), _number(data.get("height"))
    if size is None and width and height and width >= 1 and height >= 1:
        size = f"{int(width)}x{int(height)}"
    seconds = data.get("seconds") if data.get("seconds") is not None else data.get("duration")
    hint = _number(data.get("poll_after_seconds"))
    return Video(
        id=video_id,
        status=normalise_status(raw_status, progress),
        raw_status=raw_status,
        progress=progress,
        model=_text(data.get("model")),
        prompt=_text(data.get("prompt")),
        size=size,
        seconds=parse_seconds(seconds),
        created_at=parse_time(data.get("created_at")),
        completed_at=parse_time(data.get("completed_at")),
        expires_at=parse_time(data.get("expires_at")),
        remixed_from=_text(data.get("remixed_from_video_id")),
        error=_error(data.get("error")),
        url=_result_url(data),
        poll_after=hint if hint is not None and hint >= 0 else None,
    )
