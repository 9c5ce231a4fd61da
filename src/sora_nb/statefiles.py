"""State files in a folder that other processes and people write too (a shared cache): written atomically, read
as untrusted (regular files only, size-capped, a JSON object or an ``UnreadableFile`` saying why), and each
problem logged once. The cache's records and index and the spend record all go through here.
"""

from __future__ import annotations

import json
import logging
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("sora_nb")
MAX_RECORD_BYTES = 2**20  # a record is a few KiB; a bigger video.json or index entry is not one of ours
_reported: set[tuple[str, str, tuple[int, int] | None]] = set()


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


class UnreadableFile(Exception):
    """A state file exists but cannot be trusted; the message says why (``it is not valid JSON``, ...)."""


def read_object(path: Path, *, limit: int | None = MAX_RECORD_BYTES) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when there is no file; ``UnreadableFile`` saying why when it is not a
    regular file (a FIFO would block), cannot be read, is larger than ``limit`` bytes, is not JSON (nesting too
    deep counts) or is not an object."""
    try:
        found = path.stat()
        if not stat.S_ISREG(found.st_mode):
            raise UnreadableFile("it is not a regular file")
        if limit is not None and found.st_size > limit:
            raise UnreadableFile(f"it is larger than {limit // 1024} KiB")
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnreadableFile(f"it cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise UnreadableFile("it is not valid JSON") from None
    if not isinstance(data, dict):
        raise UnreadableFile(f"it holds a JSON {type(data).__name__}, not an object")
    return data


def report_once(path: Path, problem: str) -> None:
    """Log a problem with a state file once per process (listings read every entry on each call), again only
    when the file changes."""
    try:
        found = path.stat()
        stamp: tuple[int, int] | None = (found.st_mtime_ns, found.st_size)
    except OSError:
        stamp = None
    key = (str(path), problem, stamp)
    if key not in _reported:
        _reported.add(key)
        log.warning("sora_nb: %s: %s", path, problem)
