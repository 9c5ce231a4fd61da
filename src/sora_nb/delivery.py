"""Delivery: a finished video into the cache, downloaded, recorded, with its poster and images.

The video is downloaded under its cross-process lock (started again on a dropped transfer, up to
``DOWNLOAD_ATTEMPTS`` times) and its record saved, so it is usable at once. Its thumbnail and spritesheet follow,
both at once, in the background: the video waits ``AUX_GRACE`` seconds for them, and one that is slower arrives
later through ``on_images``. A synchronous engine's answer is the video itself: no content endpoint is asked, and
its poster is made from the first frame. This module knows no Job; the Job reports what it is told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sora_nb import errors
from sora_nb.cache import CachedVideo
from sora_nb.client import AsyncVideosClient
from sora_nb.downloads import Variant
from sora_nb.engine import Engine
from sora_nb.media import first_frame
from sora_nb.polling import TRANSIENT
from sora_nb.video import Video

log = logging.getLogger("sora_nb")

DOWNLOAD_ATTEMPTS = 3
AUX_GRACE = 1.0  # seconds a finished video waits for its images before the job completes without them
Progress = Callable[[int, int | None], None]  # bytes done, bytes in all (None when unknown)


async def deliver(
    engine: Engine,
    video: Video,
    *,
    request: Mapping[str, Any],
    duration: float | None,
    answered: bool,
    on_bytes: Progress,
    on_images: Callable[[], None],
) -> CachedVideo:
    """Put the finished ``video`` into the cache (unless it is there already) and return its entry.

    ``request`` and ``duration`` (seconds the server took; later ETAs of jobs like it come from it) go into its
    record; ``answered``: it is a synchronous engine's create answer. ``on_bytes`` follows the download;
    ``on_images`` is called when images that missed the grace period have arrived (or given up).
    """
    cache = engine.cache
    aux: asyncio.Task[None] | None = None
    async with engine.guard(f"video:{video.id}"):
        lock = cache.lock(video.id)
        await asyncio.to_thread(lock.acquire)
        try:
            hit = cache.get(video.id)
            if hit is None:
                await fetch(engine, video, answered=answered, on_bytes=on_bytes)
                cache.save_record(
                    video,
                    request=request,
                    backend=engine.backend.label,
                    endpoint=engine.backend.identity,
                    duration=duration,
                )
                if not answered:  # only for a video that is here: no image outlives a failure
                    aux = engine.fetch_aux(video)
                else:  # a synchronous engine serves no images: a poster from the first frame, made here
                    await asyncio.to_thread(
                        first_frame, cache.asset_path(video.id), cache.asset_path(video.id, "thumbnail")
                    )
                hit = cache.get(video.id)
            assert hit is not None and hit.path is not None
        finally:
            lock.release()
    if aux is not None:
        await asyncio.wait({aux}, timeout=AUX_GRACE)  # on time, a poster comes with the video; if not, later
        if not aux.done():
            aux.add_done_callback(lambda _: on_images())
        hit = cache.get(video.id) or hit
    return hit


async def fetch(engine: Engine, video: Video, *, answered: bool, on_bytes: Progress) -> None:
    """Download the video into the cache, starting it again up to DOWNLOAD_ATTEMPTS times."""
    client = engine.client
    dest = engine.cache.asset_path(video.id, "video")
    if answered:  # its bytes came with the answer, or its URL: no content endpoint there
        if not dest.is_file():
            await client.download(video.id, dest, url=video.url, on_progress=on_bytes)
        return
    await download_video(client, video.id, dest, url=video.url, on_progress=on_bytes)


async def download_video(
    client: AsyncVideosClient,
    video_id: str,
    dest: Path,
    *,
    url: str | None,
    variant: Variant = "video",
    attempts: int = DOWNLOAD_ATTEMPTS,
    pause: float = 2.0,
    on_progress: Progress | None = None,
) -> None:
    """Download an asset from the content endpoint (the video from ``url``, its record's result URL, where that
    endpoint has none), starting it again after a transient failure up to ``attempts`` times, ``pause`` x n
    seconds apart. The client's jobs and the class relay both fetch this way."""
    for attempt in range(attempts):
        try:
            try:
                await client.download(video_id, dest, variant=variant, on_progress=on_progress)
            except errors.NotFoundError:
                if variant != "video" or not url:
                    raise
                await client.download(video_id, dest, url=url, on_progress=on_progress)
            return
        except (*TRANSIENT, errors.DownloadError) as exc:
            if attempt == attempts - 1:
                raise
            log.info("sora_nb: download of %s failed (%s); starting it again", video_id, type(exc).__name__)
            await asyncio.sleep(pause * (attempt + 1))
