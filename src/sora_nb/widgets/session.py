"""A playground's session on disk: its takes (the request, the video ID once known, what it cost) with their stars
and notes, in ``<cache>/playgrounds/<name>.json``, so re-running the cell or restarting the kernel finds them.

The file is one of the cache's state files (written atomically, read as untrusted: ``statefiles``); a session
that cannot be read starts empty and says why in the log, and is not overwritten until a take changes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sora_nb.statefiles import UnreadableFile, read_object, write_json

log = logging.getLogger("sora_nb")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class TakeRecord:
    """What the session keeps of one take: never bytes (an image by its digest, in ``request``)."""

    request: dict[str, Any]
    kind: str = "generate"
    video_id: str | None = None
    cost_usd: float = 0.0
    starred: bool = False
    note: str = ""
    key: str = field(default="", repr=False)


def session_path(cache_root: Path, name: str) -> Path:
    """Where the session ``name`` lives; ValueError for a name that is not a plain file name."""
    if not _NAME.match(name) or name.startswith("."):
        raise ValueError(f"session name {name!r}: use letters, digits, '-', '_' or '.', as in 'lesson-1'")
    return cache_root / "playgrounds" / f"{name}.json"


def _record(raw: Any) -> TakeRecord | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        return None
    video_id = raw.get("video_id")
    cost = raw.get("cost_usd")
    return TakeRecord(
        request=raw["request"],
        kind=str(raw.get("kind") or "generate"),
        video_id=video_id if isinstance(video_id, str) and video_id else None,
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0 else 0.0,
        starred=raw.get("starred") is True,
        note=str(raw.get("note") or "")[:2000],
        key=str(raw.get("key") or ""),
    )


def load(path: Path) -> list[TakeRecord]:
    """The takes saved at ``path``, oldest first ([] when there are none or the file cannot be trusted)."""
    try:
        data = read_object(path)
    except UnreadableFile as exc:
        log.warning("sora_nb: the playground session %s was not restored: %s; it starts empty", path, exc)
        return []
    takes = data.get("takes") if data else None
    return [r for r in map(_record, takes) if r is not None] if isinstance(takes, list) else []


def save(path: Path, takes: list[TakeRecord]) -> None:
    """Write the session (atomically); a failure is logged, the session lives on in memory."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"version": 1, "takes": [asdict(t) for t in takes]})
    except OSError as exc:
        log.warning("sora_nb: the playground session was not saved to %s: %s", path, exc)
