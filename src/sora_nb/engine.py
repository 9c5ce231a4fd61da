"""Where jobs go, and what they share there.

``resolve_backend()`` turns the settings into a Backend (starting the embedded local preview server, once per
process and lazily, when no base URL is configured); an Engine is what every job of one configuration shares:
the client, the cache, concurrency slots, the admission of creates, the batch poller and the images still
downloading. ``get_engine()`` gives the one for the settings in force, on the runner loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sora_nb import errors
from sora_nb.admission import Admission
from sora_nb.cache import VideoCache, fingerprint
from sora_nb.client import AsyncVideosClient
from sora_nb.config import Settings, default_cache_dir, settings
from sora_nb.costs import Estimate, on_own_engine
from sora_nb.discovery import TITLES, Served, discover
from sora_nb.downloads import Variant
from sora_nb.polling import BatchPoller
from sora_nb.providers import get_provider
from sora_nb.video import Video

log = logging.getLogger("sora_nb")
LOCAL_LABEL = "local preview"
AUX_VARIANTS: tuple[Variant, ...] = ("thumbnail", "spritesheet")


@dataclass(frozen=True)
class Backend:
    """Where jobs go: the URL, the key, the profile, a label for people and an identity for request fingerprints.

    ``engine`` names the self-hosted engine (``"SGLang"``; empty for gateways), ``models`` are the ones it serves,
    ``detected`` says the profile came from what the server serves, and ``settled`` False that the server did not
    answer those questions (the next job asks again).
    """

    base_url: str
    api_key: str | None = field(repr=False)
    provider: str
    label: str
    identity: str
    local: bool
    engine: str = ""
    models: tuple[str, ...] = ()
    detected: bool = False
    settled: bool = True

    @property
    def served_model(self) -> str | None:
        """The model a request without one gets: the first an engine serves (None elsewhere)."""
        return self.models[0] if self.engine and self.models else None


_local_server: Any = None
_local_lock = threading.Lock()


def _local_backend(speed: float, cache_dir: Path) -> Backend:
    global _local_server
    with _local_lock:
        if _local_server is None or not _local_server.running:
            from sora_nb.server import start

            # with a cache dir configured, the local server's jobs live beside the cache (one folder holds all);
            # with the default one, in the server's own default folder
            data_dir = None if cache_dir == default_cache_dir() else cache_dir / "local-server"
            _local_server = start(speed=speed, data_dir=data_dir)
            log.info("sora_nb: started the local preview server at %s", _local_server.base_url)
        server = _local_server
    return Backend(
        base_url=server.base_url,
        api_key=server.key,
        provider="openai",
        label=LOCAL_LABEL,
        identity="local-preview",
        local=True,
    )


def resolve_backend(current: Settings | None = None) -> Backend:
    """The backend for ``current`` settings, starting the embedded local server if no base URL is set."""
    current = current or settings()
    if not current.base_url:  # Settings.local, spelled so that mypy knows base_url is a str below
        if current.api_key:
            log.warning(
                "sora_nb: an API key is set but no base URL. OpenAI's hosted video API closed on "
                "2026-09-24; set SORA_NB_BASE_URL (or configure(base_url=...)) to your gateway. "
                "Using the local preview server."
            )
        return _local_backend(current.local_speed, current.cache_dir)
    name = current.provider
    provider = get_provider(name or "openai")  # every engine profile has the official /v1 prefix
    url = httpx.URL(provider.base_url(current.base_url))
    identity = f"{url.scheme}://{url.netloc.decode()}{url.path}"
    served = Served(name)
    if name is None or provider.engine:  # provider="openai" (or any gateway's) asks nothing: the official behaviour
        served = discover(identity, str(url), current.api_key, current.cache_dir, identify_engine=name is None)
    chosen = name or served.provider or "openai"
    title = TITLES.get(chosen, "")
    return Backend(
        base_url=str(url),
        api_key=current.api_key,
        provider=chosen,
        label=f"{title} · {url.netloc.decode()}" if title else url.host or str(url),
        identity=identity,
        local=False,
        engine=title,
        models=served.models if get_provider(chosen).engine else (),
        detected=name is None and served.provider is not None,
        settled=served.settled,
    )


def estimate_rules(current: Settings) -> tuple[str | None, Callable[[Estimate], Estimate]]:
    """For estimates under ``current``: the model a request without one gets (``configure(model=...)``, else a
    self-hosted engine's served one: detected, and remembered, as a job would) and what an estimate becomes there
    (free where the engine's model has no price: :func:`~sora_nb.costs.on_own_engine`)."""
    backend = None if current.local else resolve_backend(current)
    if backend is None or not backend.engine:
        return current.model, lambda estimate: estimate
    return current.model or backend.served_model, on_own_engine


class Engine:
    """What jobs share for one configuration: the client, the cache, concurrency slots and the poller."""

    def __init__(self, backend: Backend, config: Settings) -> None:
        self.backend = backend
        self.settings = config
        self.client = AsyncVideosClient(
            backend.base_url,
            backend.api_key,
            provider=backend.provider,
            api_version=config.api_version,
            timeout=config.timeout,
            idle_timeout=config.timeout / 2,  # a download receiving nothing this long is resumed
            max_connections=max(8, 2 * config.max_concurrency),
        )
        self.cache = VideoCache(config.cache_dir)
        # how many jobs the engine takes at once, learned from its refusals; an accepted job holds a place
        self.admission = Admission(self.client.wire.server)
        self.slots = asyncio.Semaphore(config.max_concurrency)
        # Images are downloaded outside a job's slot; bounded so that with the videos of the jobs in their slots
        # they never need more download threads than the client has (max_connections >= 2 * max_concurrency).
        self.aux_slots = asyncio.Semaphore(config.max_concurrency)
        self.aux: dict[str, asyncio.Task[None]] = {}
        self._guards: dict[str, asyncio.Lock] = {}
        self.poller = BatchPoller(self.client)
        self.users = 0
        self.retired = False

    def request_key(self, kind: str, request: Mapping[str, Any]) -> str:
        """The fingerprint a request of ``kind`` is known by on this backend (the cache index's key)."""
        return fingerprint({"endpoint": self.backend.identity, "kind": kind, **request})

    async def release(self) -> None:
        """A job is done with this engine."""
        self.users -= 1
        await self.close_if_idle()

    def guard(self, name: str) -> asyncio.Lock:
        """This process's lock for ``name``, taken before the file lock of the same name: jobs of one process
        queue here, and only other processes wait on the file lock (filelock refuses a second blocking acquire
        from a reused worker thread)."""
        return self._guards.setdefault(name, asyncio.Lock())

    async def close_if_idle(self) -> None:
        """Close the connections of a replaced engine that no job uses any more."""
        if self.retired and self.users <= 0:
            await self.client.aclose()

    def fetch_aux(self, video: Video) -> asyncio.Task[None]:
        """Start downloading the thumbnail and spritesheet of ``video``, both at once, as a task of their own.

        Best effort: one that fails is logged and left out, and it never fails a job. Each file appears whole
        or not at all (the client downloads to ``.part`` and renames). The engine stays open until they end.
        """
        self.users += 1
        task = asyncio.ensure_future(self._fetch_aux(video))
        self.aux[video.id] = task
        task.add_done_callback(lambda done: self.aux.pop(video.id) if self.aux.get(video.id) is done else None)
        return task

    async def _fetch_aux(self, video: Video) -> None:
        try:
            await asyncio.gather(*(self._fetch_one(video, variant) for variant in AUX_VARIANTS))
        except Exception:  # a bug must not vanish, nor touch the job, whose video is already here
            log.exception("sora_nb: fetching the images of %s failed unexpectedly", video.id)
        finally:
            await self.release()

    async def _fetch_one(self, video: Video, variant: Variant) -> None:
        async with self.aux_slots:
            try:
                await self.client.download(video.id, self.cache.asset_path(video.id, variant), variant=variant)
            except (errors.SoraError, OSError) as exc:  # OSError: the cache entry was removed meanwhile
                log.info("sora_nb: no %s for %s (%s)", variant, video.id, exc)


_engine: Engine | None = None
_engine_lock: asyncio.Lock | None = None


async def get_engine() -> Engine:
    """The engine for the settings in force (rebuilt after configure()); runs on the runner loop.

    A replaced engine is closed once the last job using it has finished.
    """
    global _engine, _engine_lock
    _engine_lock = _engine_lock or asyncio.Lock()
    async with _engine_lock:
        current = settings()
        # an engine whose server did not say what it is asks again once its jobs are done (not mid-sweep: the
        # jobs of one sweep share its slots)
        unsettled = _engine is not None and not _engine.backend.settled and _engine.users <= 0
        if _engine is None or _engine.settings != current or unsettled:
            backend = await asyncio.to_thread(resolve_backend, current)
            if _engine is not None:
                _engine.retired = True
                await _engine.close_if_idle()
            _engine = Engine(backend, current)
        _engine.users += 1
        return _engine
