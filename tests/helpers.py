"""Helpers for tests: authenticated clients (plain httpx, and sora_nb's own), waiting for jobs, reading MP4 boxes."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from sora_nb.client import AsyncVideosClient
from sora_nb.server import ServerHandle
from tests.conftest import PROVIDER_FOR_DIALECT


def client_for(handle: ServerHandle, **kwargs: Any) -> httpx.Client:
    """A plain httpx client authenticated the way the handle's dialect expects."""
    if handle.dialect == "azure":
        headers = {"api-key": handle.key}
        kwargs.setdefault("params", {"api-version": "preview"})
    else:
        headers = {"Authorization": f"Bearer {handle.key}"}
    return httpx.Client(base_url=handle.base_url, headers=headers, timeout=30, **kwargs)


def videos_client_for(handle: ServerHandle, **kwargs: Any) -> AsyncVideosClient:
    """An AsyncVideosClient for the handle's server, in its dialect."""
    base = handle.url if handle.dialect == "azure" else handle.base_url
    kwargs.setdefault("provider", PROVIDER_FOR_DIALECT[handle.dialect])
    return AsyncVideosClient(base, handle.key, **kwargs)


async def until_done(client: AsyncVideosClient, video_id: str, timeout: float = 60) -> Any:
    """The video's record once it has ended, asked for every 0.1 s."""
    deadline = time.monotonic() + timeout
    while True:
        video = await client.retrieve(video_id)
        if video.done:
            return video
        assert time.monotonic() < deadline, f"{video_id} still {video.raw_status}"
        await asyncio.sleep(0.1)


def wait_for(
    client: httpx.Client,
    video_id: str,
    *,
    statuses: tuple[str, ...] = ("completed", "failed"),
    timeout: float = 60,
    path_id: str | None = None,
) -> dict[str, Any]:
    """Poll a video until its status is one of ``statuses``; the last record."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/videos/{path_id or video_id}")
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        if record["status"] in statuses:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"video {video_id} still {record['status']} after {timeout} s")
        time.sleep(0.1)


def mp4_boxes(data: bytes) -> list[str]:
    """The top-level box types of an MP4, in file order."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def wait_for_images(timeout: float = 60) -> None:
    """Wait until no thumbnail or spritesheet is still downloading in the background (they follow the video,
    which alone completes a job), so that a check of the cache sees them settled."""
    from sora_nb import engine

    deadline = time.monotonic() + timeout
    while engine._engine is not None and engine._engine.aux:
        if time.monotonic() > deadline:
            raise AssertionError(f"images of {sorted(engine._engine.aux)} still downloading after {timeout} s")
        time.sleep(0.02)


@contextlib.contextmanager
def peak_active(handle: ServerHandle) -> Iterator[list[int]]:
    """Watch how many jobs the server has queued or running at once; the peak is in the yielded list."""
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], handle.app.store.active_count())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield peak
    finally:
        stop.set()
        watcher.join()
