"""The local cache: files keyed by video ID, the request index, atomic writes, locks shared across processes.

Layout under the root (``SORA_NB_CACHE_DIR`` or the platform's user cache dir)::

    videos/<key>/video.mp4, thumbnail.webp, spritesheet.jpg, video.json, .lock
    requests/<fingerprint>.json, <fingerprint>.lock

``<key>`` is a readable, filesystem-safe prefix of the ID plus a hash of it: IDs are opaque and may hold
``/ + =`` or worse, and never become paths. ``video.json`` holds the normalised record and the request
parameters, never keys or signed URLs. A shared cache holds files anyone may have written, so every record
is read through one validating reader (``records.py``): what it cannot read is skipped or repaired, and said once
in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock

from sora_nb.config import settings
from sora_nb.errors import SoraError
from sora_nb.records import CachedVideo as CachedVideo  # re-exported: sora_nb.cache.CachedVideo is public
from sora_nb.records import saved_record, validated
from sora_nb.statefiles import UnreadableFile, read_object, report_once, write_json
from sora_nb.video import Video

log = logging.getLogger("sora_nb")
ASSET_FILES = {"video": "video.mp4", "thumbnail": "thumbnail.webp", "spritesheet": "spritesheet.jpg"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# no link is followed at the open itself; no wait on a FIFO planted in a shared cache
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def cache_key(video_id: str) -> str:
    """A directory name for any ID: a safe readable prefix plus 16 hex digits of its SHA-256."""
    readable = _UNSAFE.sub("_", video_id)[:40].strip("_") or "video"
    digest = hashlib.sha256(video_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable}-{digest}"


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable hash of a request's parameters (endpoint, model, prompt, size, seconds, image hash, seed, ...)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# ----- path safety: a shared cache may hold links to anyone's files -----------------------------------------------
def _own_assets(root: Path, directory: Path) -> dict[str, Path]:
    """The assets of one video folder that are regular files under ``root`` reached through no link (not the file,
    its folder or ``videos``). The cache reports only such files, so nothing it serves, packs or copies is
    someone's link to ``~/.ssh``; a refused file is named in the log. ``root`` itself may be a link.

    The folder is checked once and each file with one ``lstat``: a listing does this for every cached video."""
    try:
        linked = (root / "videos").is_symlink() or directory.is_symlink()
        inside = directory.resolve().is_relative_to(root.resolve())  # also catches a Windows junction
    except (OSError, RuntimeError):  # unreadable, a link loop
        linked, inside = True, False
    found: dict[str, Path] = {}
    for variant, name in ASSET_FILES.items():
        path = directory / name
        try:
            mode = path.lstat().st_mode
        except OSError:  # absent (a video without a spritesheet), or unreadable
            continue
        if not linked and inside and stat.S_ISREG(mode):
            found[variant] = path
        else:
            log.warning("sora_nb: skipped %s: a link or not a regular file inside the cache %s", path, root)
    return found


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


class VideoCache:
    """Videos on disk keyed by ID, plus the index from request fingerprints to video IDs.

    Safe for several processes: records are written atomically and creates/downloads take file locks.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        """A cache at ``root``; without one, at the ``cache_dir`` of the settings in force."""
        self.root = Path(root).expanduser() if root is not None else settings().cache_dir
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

    def save_record(
        self,
        video: Video,
        *,
        request: Mapping[str, Any] | None = None,
        backend: str = "",
        endpoint: str = "",
        duration: float | None = None,
    ) -> None:
        """Write ``video.json``: the normalised record (without result URLs), the request parameters, and where
        and how long it was made (``endpoint``: the backend's identity; ``duration``: seconds, for ETAs)."""
        directory = self.directory(video.id)
        previous = self._entry(directory)
        kept = previous.record if previous is not None and previous.id == video.id else {}
        write_json(
            directory / "video.json",
            {
                "id": video.id,
                "video": saved_record(video),
                "request": dict(request or kept.get("request") or {}),
                "backend": backend or kept.get("backend", ""),
                "endpoint": endpoint or kept.get("endpoint", ""),
                "duration": duration if duration is not None else kept.get("duration"),
                "saved_at": time.time(),
            },
        )

    def _entry(self, directory: Path) -> CachedVideo | None:
        path = directory / "video.json"
        try:
            raw = read_object(path)
        except UnreadableFile as exc:
            report_once(path, f"skipped: {exc}; delete its folder")
            return None
        checked = validated(raw, path) if raw is not None else None  # no record yet: a download in progress
        if checked is None:
            return None
        record, video = checked
        found = _own_assets(self.root, directory)
        return CachedVideo(
            id=record["id"],
            directory=directory,
            path=found.get("video"),
            thumbnail=found.get("thumbnail"),
            spritesheet=found.get("spritesheet"),
            record=record,
            video=video,
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

    def lookup(self, key: str, *, drop_unusable: bool = False) -> str | None:
        """The video ID recorded for a request fingerprint, if any.

        An entry without a usable ID (unreadable, not an object, an empty or non-text ``video_id``) counts as none.
        With ``drop_unusable``, which only a holder of :meth:`request_lock` may pass (else a concurrent create's
        fresh entry could be the one removed), it is also removed, with a log line: the request is created anew.
        """
        path = self._index_path(key)
        try:
            entry = read_object(path)
        except UnreadableFile as exc:
            problem = str(exc)
        else:
            if entry is None:
                return None
            video_id = entry.get("video_id")
            if isinstance(video_id, str) and video_id.strip():
                return video_id
            problem = "its video_id is empty" if isinstance(video_id, str) else "it holds no video_id text"
        if drop_unusable:
            try:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
            except OSError as exc:
                raise SoraError(
                    f"the cache's index entry {path} is unusable ({problem}) and cannot be removed "
                    f"({exc.strerror or type(exc).__name__}); nothing was sent. Delete that file and run again"
                ) from None
            log.warning(
                "sora_nb: index entry %s was unusable (%s); removed it, the request is created again", path, problem
            )
        return None

    def remember(self, key: str, video_id: str, request: Mapping[str, Any]) -> None:
        """Record fingerprint -> video ID (done the moment a create returns, before any polling)."""
        write_json(self._index_path(key), {"video_id": video_id, "request": dict(request), "at": time.time()})

    def forget(self, key: str) -> None:
        """Drop a fingerprint from the index (a failed or cancelled job: the next run creates anew)."""
        self._index_path(key).unlink(missing_ok=True)
