"""Resumable, validated downloads: a file is whole and valid at its place, or absent.

A download streams to ``<dest>.part`` on a thread of its own (a sync client: less CPU per byte), resumes with
``Range`` (guarded by ``If-Range``) after a drop or an idle stall, is checked (status, content type, magic bytes,
length; without a declared length, the file's own framing) and only then renamed into place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import httpx

from sora_nb import errors
from sora_nb.errors import one_line
from sora_nb.media import media_ok, whole
from sora_nb.video import SHOWN_STATUS, parse_video
from sora_nb.wire import RETRY_STATUSES, TAGS, Wire, header_int

log = logging.getLogger("sora_nb")

Variant = Literal["video", "thumbnail", "spritesheet"]
ProgressCallback = Callable[[int, int | None], None]
_CONTENT_RANGE = re.compile(r"bytes ([^-/ ]+)-([^/ ]+)/([^ ]+)")


def content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(first, last, total)`` of a ``Content-Range`` ("bytes 0-99/100"; total None for "/*"); None if unreadable."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    first, last, total = header_int(match[1]), header_int(match[2]), header_int(match[3])
    if first is None or last is None or last < first or (total is None) != (match[3] == "*"):
        return None
    return None if total is not None and last >= total else (first, last, total)


def keep(part: Path, dest: Path, *, variant: str, video_id: str, total: int | None) -> Path:
    """Rename ``part`` to ``dest`` if it is the whole, valid asset: ``total`` bytes when that is declared (else
    whole by its own framing), beginning as its kind does. Otherwise ``part`` is removed: DownloadError."""
    with part.open("rb") as f:
        head = f.read(24)
    size = part.stat().st_size
    if (size != total if total is not None else not whole(variant, part)) or not media_ok(variant, head):
        part.unlink(missing_ok=True)
        raise errors.DownloadError(f"the {variant} of {video_id!r} arrived incomplete or invalid; nothing was kept")
    part.replace(dest)
    return dest


async def save_answer(response: httpx.Response, dest: Path, *, video_id: str, server: str) -> Path:
    """Stream an open answer's body (the MP4 a synchronous engine answers a create with) to ``dest`` via
    ``dest.part``, one chunk in memory at a time; kept only if it is as long as declared and a whole MP4 by its
    own framing (a body cut short is never taken for a video). The caller closes ``response``."""
    part = dest.with_name(dest.name + ".part")
    declared = None if response.headers.get("content-encoding") else header_int(response.headers.get("content-length"))
    received = 0
    try:
        with part.open("wb") as out:
            async for chunk in response.aiter_bytes():
                out.write(chunk)
                received += len(chunk)
    except (httpx.TransportError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise errors.DownloadError(
            f"{server} was sending the video of {video_id!r} when the transfer failed ({type(exc).__name__}); "
            "nothing was kept. Run the request again: this engine answers the create with the video itself"
        ) from None
    if declared is not None and received != declared:
        part.unlink(missing_ok=True)
        raise errors.DownloadError(
            f"{server} sent {received} of the {declared} bytes of the video of {video_id!r}; nothing was kept. "
            "Run the request again"
        )
    return keep(part, dest, variant="video", video_id=video_id, total=None)


class Downloader:
    """Downloads over one wire, each body on a thread of this downloader's own pool."""

    def __init__(self, wire: Wire, threads: int) -> None:
        self.wire = wire
        # Download bodies get threads of their own: a stalled one must not hold a thread that a lock, a DNS
        # look-up or another job's video waits for in asyncio's shared default pool.
        self._threads = concurrent.futures.ThreadPoolExecutor(threads, "sora-nb-download")

    def close(self) -> None:
        """Stop the threads (a download still running is cancelled)."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def download(
        self,
        target: httpx.URL,
        dest: Path,
        *,
        video_id: str,
        variant: Variant = "video",
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Stream ``target`` to ``dest`` (via ``dest.part``), resuming after drops; the file is whole and valid or
        absent. ``video_id`` and ``variant`` name it in messages and choose its media checks."""
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        part.unlink(missing_ok=True)
        stop = threading.Event()
        work = functools.partial(self._download_into, part, dest, target, video_id, variant, on_progress, stop)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work)
        except BaseException:
            stop.set()  # a cancelled download: the worker thread stops before it writes anything more
            part.unlink(missing_ok=True)
            raise

    def _download_into(
        self,
        part: Path,
        dest: Path,
        target: httpx.URL,
        video_id: str,
        variant: str,
        on_progress: ProgressCallback | None,
        stop: threading.Event,
    ) -> Path:
        wire = self.wire
        etag: str | None = None
        total: int | None = None
        attempt = 0
        while True:
            self._check_stop(stop, video_id)  # a retry's pause or a request may outlast a cancel
            have = part.stat().st_size if part.exists() else 0
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
                if etag:
                    headers["If-Range"] = etag
            wire.requests["download"] += 1
            try:
                response = wire.send_sync(wire.http.build_request("GET", target, headers=headers))
            except httpx.TransportError as exc:
                attempt = self._retry(attempt, exc, video_id)
                continue
            try:
                if response.status_code == 416 and total is not None and have >= total:
                    break
                if response.status_code >= 400:
                    response.read()
                    error = wire.error(response)
                    if response.status_code in RETRY_STATUSES and attempt < wire.max_retries:
                        time.sleep(wire.delay(attempt, response.headers.get("retry-after")))
                        attempt += 1
                        continue
                    raise error
                start, total = self._declared(response, variant, video_id)
                if start != have:  # the server ignored the range, or the file changed: start over
                    if start != 0:
                        raise errors.DownloadError(f"the server resumed {video_id!r} at byte {start}, not {have}")
                    part.unlink(missing_ok=True)
                    have = 0
                etag = response.headers.get("etag") or etag
                self._stream_body(response, part, variant, video_id, have, total, on_progress, stop)
            except httpx.TransportError as exc:
                attempt = self._retry(attempt, exc, video_id)
                continue
            finally:
                response.close()
            if part.stat().st_size >= total if total is not None else whole(variant, part):
                break  # without a declared length, only the file's own framing says it is whole
            attempt = self._retry(attempt, None, video_id)
        return keep(part, dest, variant=variant, video_id=video_id, total=total)

    @staticmethod
    def _declared(response: httpx.Response, variant: str, video_id: str) -> tuple[int, int | None]:
        """Where the body starts in the file, and the file's size (None if not declared): from ``Content-Range`` on
        a 206, else ``Content-Length``. DownloadError if either is unreadable or they disagree."""
        length_text, range_text = response.headers.get("content-length"), response.headers.get("content-range")
        length = header_int(length_text)
        span = content_range(range_text) if response.status_code == 206 else None
        if length_text is not None and length is None:
            bad = f"Content-Length {one_line(length_text, 80)!r}"
        elif response.status_code == 206 and (span is None or length not in (None, span[1] - span[0] + 1)):
            bad = f"Content-Range {one_line(range_text or '', 80)!r} (Content-Length {length_text})"
        else:
            return (span[0], span[2]) if span is not None else (0, length)
        raise errors.DownloadError(
            f"the server sent the {variant} of {video_id!r} with an unreadable {bad}; nothing was kept. Try again "
            "later; if it persists, a proxy may be rewriting headers (check base_url)"
        )

    def _stream_body(
        self,
        response: httpx.Response,
        part: Path,
        variant: str,
        video_id: str,
        have: int,
        total: int | None,
        on_progress: ProgressCallback | None,
        stop: threading.Event,
    ) -> None:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        received = have
        chunks = response.iter_bytes()  # as they arrive: a buffered chunk would be lost on a drop
        self._check_stop(stop, video_id)  # not after a cancel: download() has removed the file, and it stays so
        with part.open("ab") as out:
            for chunk in chunks:
                self._check_stop(stop, video_id)
                if received == have == 0 and not media_ok(variant, chunk[:16]):
                    self._reject_body(response, chunk, chunks, ctype, video_id, variant)
                out.write(chunk)
                received += len(chunk)
                if on_progress is not None:
                    on_progress(received, total)

    @staticmethod
    def _check_stop(stop: threading.Event, video_id: str) -> None:
        if stop.is_set():
            raise errors.JobCancelledError(f"the download of {video_id!r} was cancelled")

    @staticmethod
    def _reject_body(
        response: httpx.Response,
        head: bytes,
        rest: Iterator[bytes],
        ctype: str,
        video_id: str,
        variant: str,
    ) -> None:
        body = head
        for chunk in rest:
            body += chunk
            if len(body) > 64 * 1024:
                break
        try:
            record = parse_video(json.loads(body))
        except (ValueError, errors.SoraError):
            record = None
        if record is not None and record.status != "completed":
            raise errors.NotReadyError(
                f"{video_id!r} is {one_line(record.raw_status, SHOWN_STATUS)!r}: the server sent its JSON record "
                f"labelled {ctype!r} instead of the file",
                status=response.status_code,
            )
        text = body[:300].decode("utf-8", "replace")
        if text.count("\ufffd") > 3 or (not text.isprintable() and not text.strip().startswith(("{", "<"))):
            text = f"{len(body)}+ bytes of binary data that is not a valid {variant} file"
        raise errors.DownloadError(
            f"the server sent {ctype or 'unlabelled data'} instead of the {variant} of {video_id!r}: "
            f"{one_line(TAGS.sub(' ', text), 160)!r}"
        )

    def _retry(self, attempt: int, exc: Exception | None, video_id: str) -> int:
        if attempt >= self.wire.max_retries:
            what = type(exc).__name__ if exc else "a short body"
            raise errors.DownloadError(
                f"download of {video_id!r} kept failing ({what}); nothing was kept. "
                "Try again later: the job itself is not lost"
            ) from None
        log.info("sora_nb: download of %s interrupted (%s); resuming", video_id, type(exc).__name__ if exc else "short")
        time.sleep(self.wire.delay(attempt, None) / 4)
        return attempt + 1
