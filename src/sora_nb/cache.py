"""The local cache: files keyed by video ID, the request index, atomic writes, locks shared across processes.

Layout under the root (``SORA_NB_CACHE_DIR`` or the platform's user cache dir)::

    videos/<key>/video.mp4, thumbnail.webp, spritesheet.jpg, video.json, .lock
    requests/<fingerprint>.json, <fingerprint>.lock

``<key>`` is a readable, filesystem-safe prefix of the ID plus a hash of it: IDs are opaque and may hold
``/ + =`` or worse, and never become paths. ``video.json`` holds the normalised record and the request
parameters, never keys or signed URLs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import platformdirs
from filelock import FileLock

from sora_nb.video import Video

ASSET_FILES = {"video": "video.mp4", "thumbnail": "thumbnail.webp", "spritesheet": "spritesheet.jpg"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# no link is followed at the open itself; no wait on a FIFO planted in a shared cache
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)

log = logging.getLogger("sora_nb")


def default_cache_dir() -> Path:
    """``SORA_NB_CACHE_DIR``, or the platform's user cache directory for sora_nb."""
    env = os.environ.get("SORA_NB_CACHE_DIR")
    return Path(env).expanduser() if env else platformdirs.user_cache_path("sora_nb") / "cache"


def cache_key(video_id: str) -> str:
    """A directory name for any ID: a safe readable prefix plus 16 hex digits of its SHA-256."""
    readable = _UNSAFE.sub("_", video_id)[:40].strip("_") or "video"
    digest = hashlib.sha256(video_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable}-{digest}"


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable hash of a request's parameters (endpoint, model, prompt, size, seconds, image hash, seed, ...)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ----- path safety: a shared cache may hold links to anyone's files -----------------------------------------------
def _own_file(root: Path, path: Path) -> bool:
    """Whether ``path`` is a regular file under ``root`` reached through no link (file, video folder or
    ``videos``) and lying inside it. The cache reports only such files, so nothing it serves, packs or copies is
    someone's link to ``~/.ssh``; a refused file is named in the log. ``root`` itself may be a link."""
    try:
        parts = path.relative_to(root).parts
        steps = [root.joinpath(*parts[: n + 1]) for n in range(len(parts))]
        linked = any(step.is_symlink() for step in steps)
        inside = path.resolve().is_relative_to(root.resolve())  # also catches a Windows junction, not a symlink
        if not linked and inside and stat.S_ISREG(path.lstat().st_mode):
            return True
    except (OSError, ValueError, RuntimeError):  # absent, unreadable, not under root, a link loop
        pass
    if os.path.lexists(path):
        log.warning("sora_nb: skipped %s: a link or not a regular file inside the cache %s", path, root)
    return False


def open_asset(path: Path) -> BinaryIO:
    """Open a cached file for reading; OSError if it is a link or not a regular file.

    Checked on the open file itself, so a link swapped in after the cache listed the file is refused too.
    """
    if path.is_symlink():
        raise OSError(f"{path} is a link, not a file of the cache's own")
    fd = os.open(path, _OPEN_FLAGS)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class CachedVideo:
    """A video in the cache: its files (None when absent) and its saved record."""

    id: str
    directory: Path
    path: Path | None
    thumbnail: Path | None
    spritesheet: Path | None
    record: dict[str, Any]

    @property
    def saved_at(self) -> float:
        """When the record was saved (Unix seconds)."""
        return float(self.record.get("saved_at", 0.0))

    @property
    def prompt(self) -> str:
        """The prompt the video was made from."""
        return str(self.record.get("request", {}).get("prompt") or self.record.get("video", {}).get("prompt") or "")


class VideoCache:
    """Videos on disk keyed by ID, plus the index from request fingerprints to video IDs.

    Safe for several processes: records are written atomically and creates/downloads take file locks.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        (self.root / "videos").mkdir(parents=True, exist_ok=True)
        (self.root / "requests").mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"VideoCache(root={str(self.root)!r})"

    # ----- videos -------------------------------------------------------------------------------------------
    def directory(self, video_id: str) -> Path:
        """The directory of a video's files (created on demand)."""
        path = self.root / "videos" / cache_key(video_id)
        if path.is_symlink():  # never write through someone's link; unlinking it leaves its target alone
            log.warning("sora_nb: %s in the cache is a link; replacing it with a folder of its own", path)
            path.unlink()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def asset_path(self, video_id: str, variant: str = "video") -> Path:
        """Where an asset (``video``, ``thumbnail``, ``spritesheet``) of a video lives."""
        return self.directory(video_id) / ASSET_FILES[variant]

    def lock(self, video_id: str) -> FileLock:
        """A cross-process lock for downloading a video's files.

        Not thread-local: jobs acquire it in a worker thread and release it on the event loop's thread.
        """
        return FileLock(str(self.directory(video_id) / ".lock"), thread_local=False)

    def save_record(self, video: Video, *, request: Mapping[str, Any] | None = None, backend: str = "") -> None:
        """Write ``video.json``: the normalised record (without result URLs) and the request parameters."""
        record = dataclasses.asdict(video)
        record.pop("url", None)
        path = self.directory(video.id) / "video.json"
        previous = _read_json(path) or {}
        _write_json(
            path,
            {
                "id": video.id,
                "video": record,
                "request": dict(request or previous.get("request") or {}),
                "backend": backend or previous.get("backend", ""),
                "saved_at": time.time(),
            },
        )

    def _entry(self, directory: Path) -> CachedVideo | None:
        record = _read_json(directory / "video.json")
        if record is None or not isinstance(record.get("id"), str):
            return None
        found = {v: directory / name for v, name in ASSET_FILES.items() if _own_file(self.root, directory / name)}
        return CachedVideo(
            id=record["id"],
            directory=directory,
            path=found.get("video"),
            thumbnail=found.get("thumbnail"),
            spritesheet=found.get("spritesheet"),
            record=record,
        )

    def get(self, video_id: str) -> CachedVideo | None:
        """The cached video with this ID if its MP4 is here, else None."""
        directory = self.root / "videos" / cache_key(video_id)
        entry = self._entry(directory) if directory.is_dir() else None
        return entry if entry is not None and entry.id == video_id and entry.path is not None else None

    def ls(self) -> list[CachedVideo]:
        """Every cached video with its MP4, newest first."""
        entries = [self._entry(d) for d in (self.root / "videos").iterdir() if d.is_dir()]
        return sorted((e for e in entries if e is not None and e.path is not None), key=lambda e: -e.saved_at)

    def size(self) -> int:
        """Bytes used by cached files."""
        return sum(f.stat().st_size for f in (self.root / "videos").rglob("*") if f.is_file())

    def remove(self, video_id: str) -> bool:
        """Delete a video's cached files; False if there were none."""
        directory = self.root / "videos" / cache_key(video_id)
        if not directory.is_dir():
            return False
        shutil.rmtree(directory, ignore_errors=True)
        return True

    def prune(self, *, older_than: float | timedelta | None = None, keep: int | None = None) -> list[str]:
        """Remove videos saved more than ``older_than`` ago (seconds or timedelta) and/or beyond the newest ``keep``.

        Returns the removed IDs.
        """
        if older_than is None and keep is None:
            raise ValueError("prune needs older_than=... and/or keep=...")
        age = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        entries = self.ls()
        doomed = entries[keep:] if keep is not None else []
        if age is not None:
            cutoff = time.time() - age
            doomed += [e for e in entries if e.saved_at < cutoff and e not in doomed]
        for entry in doomed:
            shutil.rmtree(entry.directory, ignore_errors=True)
        return [entry.id for entry in doomed]

    # ----- the request index --------------------------------------------------------------------------------
    def _index_path(self, key: str) -> Path:
        return self.root / "requests" / f"{key}.json"

    def request_lock(self, key: str) -> FileLock:
        """A cross-process lock held while one request is created, so concurrent identical requests pay once.

        Not thread-local, like :meth:`lock`.
        """
        return FileLock(str(self.root / "requests" / f"{key}.lock"), thread_local=False)

    def lookup(self, key: str) -> str | None:
        """The video ID recorded for a request fingerprint, if any."""
        entry = _read_json(self._index_path(key))
        return str(entry["video_id"]) if entry and isinstance(entry.get("video_id"), str) else None

    def remember(self, key: str, video_id: str, request: Mapping[str, Any]) -> None:
        """Record fingerprint -> video ID (done the moment a create returns, before any polling)."""
        _write_json(self._index_path(key), {"video_id": video_id, "request": dict(request), "at": time.time()})

    def forget(self, key: str) -> None:
        """Drop a fingerprint from the index (a failed or cancelled job: the next run creates anew)."""
        self._index_path(key).unlink(missing_ok=True)
