"""The cache's records: what a video's ``video.json`` holds, and the one validating reader of it.

A shared cache holds files anyone may have written, so a record is read field by field: a wrong-typed field is
repaired in memory or ignored (said once in the log), and a record that names no video is skipped. A saved record
never keeps the result URL (signed URLs expire and are secret).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sora_nb.errors import ResponseFormatError
from sora_nb.statefiles import report_once
from sora_nb.video import Video, parse_seconds, parse_video

LATEST_TIME = 32_503_680_000.0  # 3000-01-01: a later (or negative) saved_at is not a time a record was saved


def saved_record(video: Video) -> dict[str, Any]:
    """A video's record as ``video.json`` keeps it: without its result URL (signed URLs expire and are secret)."""
    record = dataclasses.asdict(video)
    record.pop("url", None)
    return record


def _stored_video(raw: Any, video_id: str) -> Video | None:
    """The ``video`` of a record, read back with the tolerant parser (wrong-typed fields become None); None when
    it is not a record of this video."""
    if not isinstance(raw, Mapping):
        return None
    status = raw.get("raw_status") if isinstance(raw.get("raw_status"), str) else raw.get("status")
    try:
        video = parse_video({**raw, "status": status, "remixed_from_video_id": raw.get("remixed_from")})
    except ResponseFormatError:
        return None
    return dataclasses.replace(video, url=None, poll_after=None) if video.id == video_id else None


def _saved_at(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if 0 <= value < LATEST_TIME else None


def video_params(video: Video | None, request: Mapping[str, Any]) -> dict[str, str | None]:
    """``model``, ``size`` and ``seconds`` of a video as text (or None): what the server reported, else what was
    asked for."""
    asked = {name: request.get(name) for name in ("model", "size")}
    found = {name: value if isinstance(value, str) and value.strip() else None for name, value in asked.items()}
    seconds = parse_seconds(request.get("seconds"))
    if video is not None:
        return {
            "model": video.model or found["model"],
            "size": video.size or found["size"],
            "seconds": video.seconds or seconds,
        }
    return {**found, "seconds": seconds}


@dataclass(frozen=True)
class CachedVideo:
    """A video in the cache: its files (None when absent), its saved record and the video it describes.

    ``record`` is validated: ``id`` (str), ``video`` (dict, empty when unreadable), ``request`` (dict),
    ``backend`` (str), ``endpoint`` (the backend's identity, str, "" when unknown), ``duration`` (seconds the
    server took from the create to the finish, float or None) and ``saved_at`` (Unix seconds, float);
    ``video`` is that record as a ``Video``.
    """

    id: str
    directory: Path
    path: Path | None
    thumbnail: Path | None
    spritesheet: Path | None
    record: dict[str, Any]
    video: Video | None = None

    @property
    def saved_at(self) -> float:
        """When the record was saved (Unix seconds)."""
        return float(self.record["saved_at"])

    @property
    def request(self) -> dict[str, Any]:
        """The parameters the video was requested with."""
        return dict(self.record["request"])

    @property
    def prompt(self) -> str:
        """The prompt the video was made from."""
        asked = self.record["request"].get("prompt")
        if isinstance(asked, str) and asked:
            return asked
        return self.video.prompt or "" if self.video is not None else ""

    @property
    def params(self) -> dict[str, str | None]:
        """The video's ``model``, ``size`` and ``seconds`` (text or None)."""
        return video_params(self.video, self.record["request"])


def validated(raw: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], Video | None] | None:
    """A ``video.json``'s content with every field of the right type, repairing what can be (and saying so
    once); None when it names no video."""
    video_id = raw.get("id")
    if not isinstance(video_id, str):
        report_once(path, "skipped: the record has no video ID; delete its folder")
        return None
    problems = []
    saved_at = _saved_at(raw.get("saved_at"))
    if saved_at is None:
        problems.append("'saved_at' is not a time (using the file's time)")
        try:
            saved_at = min(max(0.0, path.stat().st_mtime), LATEST_TIME - 1)
        except OSError:
            saved_at = 0.0
    request = raw.get("request")
    if not isinstance(request, dict):
        problems.append("'request' is not an object (ignored)")
        request = {}
    backend = raw.get("backend", "")
    if not isinstance(backend, str):
        problems.append("'backend' is not text (ignored)")
        backend = ""
    endpoint, duration = raw.get("endpoint", ""), raw.get("duration")
    if not isinstance(endpoint, str):
        problems.append("'endpoint' is not text (ignored)")
        endpoint = ""
    if duration is not None and _saved_at(duration) is None:  # the same test: a finite number, not negative
        problems.append("'duration' is not a number of seconds (ignored)")
        duration = None
    video = _stored_video(raw.get("video"), video_id)
    if video is None:
        problems.append("'video' is not a record of this video (ignored)")
    if problems:
        report_once(path, "repaired in memory: " + "; ".join(problems))
    record = {
        "id": video_id,
        "video": saved_record(video) if video else {},
        "request": request,
        "backend": backend,
        "endpoint": endpoint,
        "duration": float(duration) if duration is not None else None,
        "saved_at": saved_at,
    }
    return record, video
