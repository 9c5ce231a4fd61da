"""Serving a job's files from disk: streamed in chunks (flat memory), with Range, ETag and injected faults.

:class:`AssetServer` answers for a job's video, thumbnail or spritesheet (the content route and the CDN origin
both use it) and counts the body bytes it sends.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sora_nb.server import params
from sora_nb.server.errors import ApiError
from sora_nb.server.faults import DownloadFault, Faults
from sora_nb.server.records import ASSETS, JobRecord
from sora_nb.server.store import Store

CHUNK_BYTES = 256 * 1024
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_filename(name: str, limit: int) -> str:
    """``name`` with every character but ``A-Za-z0-9_.-`` replaced by ``_``, cut to ``limit`` characters."""
    return _FILENAME_UNSAFE.sub("_", name)[:limit]


class InjectedDrop(Exception):
    """Raised inside a response to cut the connection on purpose (the ``drop`` fault)."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for a connection we cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None and getattr(exc, "exceptions", None):  # an exception group, on 3.11+
            exc = exc.exceptions[0]  # type: ignore[attr-defined]
        return not isinstance(exc, InjectedDrop)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class FileResponse(Response):
    """Bytes ``start..end`` of a file, read and sent chunk by chunk."""

    def __init__(
        self,
        path: anyio.Path,
        *,
        start: int,
        end: int,
        status_code: int,
        headers: dict[str, str],
        media_type: str,
        fault: DownloadFault | None,
        sent: Callable[[int], None],
    ) -> None:
        super().__init__(status_code=status_code, headers=headers, media_type=media_type)
        self.path, self.start, self.end, self.fault, self.sent = path, start, end, fault, sent
        self.headers["content-length"] = str(end - start + 1 if end >= start else 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope.get("method") == "HEAD" or self.end < self.start:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        fault = self.fault or DownloadFault()
        sent, remaining, stalled = 0, self.end - self.start + 1, False
        async with await anyio.open_file(self.path, "rb") as f:
            await f.seek(self.start)
            while remaining > 0:
                chunk = await f.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    raise InjectedDrop("file shrank while it was being sent")
                if fault.stall_at is not None and not stalled and sent + len(chunk) > fault.stall_at:
                    head = chunk[: fault.stall_at - sent]
                    await send({"type": "http.response.body", "body": head, "more_body": True})
                    self.sent(len(head))
                    sent, remaining, chunk = sent + len(head), remaining - len(head), chunk[len(head) :]
                    stalled = True
                    await anyio.sleep(fault.stall)
                if fault.drop_at is not None and sent + len(chunk) >= fault.drop_at:
                    await send({"type": "http.response.body", "body": chunk[: fault.drop_at - sent], "more_body": True})
                    self.sent(fault.drop_at - sent)
                    raise InjectedDrop("connection cut by the drop fault")
                await send({"type": "http.response.body", "body": chunk, "more_body": bool(remaining - len(chunk))})
                self.sent(len(chunk))
                sent += len(chunk)
                remaining -= len(chunk)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The single range a ``Range`` header asks for; None to send the whole file (also for multi-ranges).

    A position that is not a plain number ("²", 5000 digits) makes the range unsatisfiable: a 416.
    """
    unit, _, ranges = header.strip().partition("=")
    first, dash, last = (part.strip() for part in ranges.partition("-"))
    if unit.lower() != "bytes" or "," in ranges or not dash or not (first or last):
        return None
    unsatisfiable = {"content-range": f"bytes */{size}"}

    def position(text: str) -> int:
        return params.whole_number(
            text, "Range", maximum=2**63 - 1, status=416, code="range_not_satisfiable", headers=unsatisfiable
        )

    if not first:
        length = position(last)
        if length == 0:
            raise ApiError(416, "Range asks for zero bytes.", code="range_not_satisfiable", headers=unsatisfiable)
        return max(0, size - length), size - 1
    start = position(first)
    end = min(position(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ApiError(
            416,
            f"Range {header.strip()[:80]!r} is outside the file ({size} bytes).",
            code="range_not_satisfiable",
            headers=unsatisfiable,
        )
    return start, end


async def serve_file(
    request: Request,
    path: anyio.Path,
    *,
    media_type: str,
    filename: str,
    etag: str,
    asset: tuple[str, str],
    faults: Faults,
    sent: Counter[tuple[str, str]],
) -> Response:
    """A 200, 206, 304 or 416 answer for ``path`` honouring Range, If-Range and If-None-Match.

    The body bytes actually sent are added to ``sent[asset]``.
    """
    size = (await path.stat()).st_size
    headers = {
        "accept-ranges": "bytes",
        "etag": etag,
        "cache-control": "private, max-age=3600",
        "content-disposition": f'attachment; filename="{filename}"',
    }
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    byte_range = _byte_range(wanted, size) if wanted and (if_range is None or if_range == etag) else None
    if byte_range is None:
        start, end, status = 0, size - 1, 200
    else:
        (start, end), status = byte_range, 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    fault = faults.download(asset, start, end - start + 1) if request.method == "GET" else None

    def count(n: int) -> None:
        sent[asset] += n

    return FileResponse(
        path, start=start, end=end, status_code=status, headers=headers, media_type=media_type, fault=fault, sent=count
    )


class AssetServer:
    """Answers for a job's files; ``bytes_sent`` counts the body bytes sent per (video ID, variant)."""

    def __init__(self, store: Store, faults: Faults) -> None:
        self.store, self.faults = store, faults
        self.bytes_sent: Counter[tuple[str, str]] = Counter()

    async def serve(self, request: Request, job: JobRecord, variant: str) -> Response:
        """The ``variant`` (a key of ASSETS) of a finished job; 404 ``asset_missing`` if its file is gone."""
        path = anyio.Path(self.store.asset(job, variant))
        if not await path.is_file():
            raise ApiError(
                404,
                f"The local server has lost the {variant} of {job.id!r}; delete the video and generate it again.",
                code="asset_missing",
            )
        name, media_type = ASSETS[variant]
        return await serve_file(
            request,
            path,
            media_type=media_type,
            filename=safe_filename(job.id, 120) + Path(name).suffix,
            etag=job.etags.get(variant, '"0"'),
            asset=(job.id, variant),
            faults=self.faults,
            sent=self.bytes_sent,
        )
