"""Configuration: ``configure()`` over environment variables over defaults, and the backend they resolve to.

With no base URL configured, the embedded local server is started (once per process, lazily) and used;
everything then says "local preview".
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from sora_nb.providers import get_provider

log = logging.getLogger("sora_nb")
LOCAL_LABEL = "local preview"


def default_cache_dir() -> Path:
    """The platform's user cache directory for sora_nb: the cache when neither configure() nor
    ``SORA_NB_CACHE_DIR`` names one."""
    return platformdirs.user_cache_path("sora_nb") / "cache"


@dataclass(frozen=True)
class Settings:
    """Resolved settings; the API key is never part of the repr."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    provider: str = "openai"
    cache_dir: Path = field(default_factory=default_cache_dir)
    model: str | None = None
    max_concurrency: int = 4
    timeout: float = 60.0
    api_version: str | None = None
    deadline: float = 3 * 3600.0
    local_speed: float = 1.0
    budget_usd: float | None = None
    prices: Mapping[str, Any] | None = None
    user: str | None = None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.name == 'api_key' and self.api_key else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"Settings({shown})"

    @property
    def local(self) -> bool:
        """Whether jobs go to the embedded local preview server (no base URL is configured): the one place
        that decides it before a job has its backend."""
        return not self.base_url


_ENV = {
    "base_url": ("SORA_NB_BASE_URL", "OPENAI_BASE_URL"),
    "api_key": ("SORA_NB_API_KEY", "OPENAI_API_KEY"),
    "provider": ("SORA_NB_PROVIDER",),
    "cache_dir": ("SORA_NB_CACHE_DIR",),
    "user": ("SORA_NB_USER",),
}
_explicit: dict[str, Any] = {}
_lock = threading.Lock()


def configure(**options: Any) -> Settings:
    """Set options for this process: base_url, api_key, provider, cache_dir, model, max_concurrency, timeout,
    api_version, deadline (seconds a job may take), local_speed (pace of the embedded server), budget_usd
    (refuse jobs that would cross it), prices ({model: dollars per second, or {size: dollars}}), user (whose
    spend is counted: on a shared cache, budget_usd then applies to this person's spend, not everyone's).

    ``None`` resets an option to its environment/default value. Returns the resolved settings.
    """
    names = {f.name for f in fields(Settings)}
    unknown = set(options) - names
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; choose from: {', '.join(sorted(names))}")
    if options.get("provider") is not None:
        get_provider(options["provider"])
    if options.get("max_concurrency") is not None and int(options["max_concurrency"]) < 1:
        raise ValueError("max_concurrency must be at least 1")
    if options.get("user") is not None and (not isinstance(options["user"], str) or not options["user"].strip()):
        raise ValueError(f"user must be a name such as 'alice', not {options['user']!r}")
    with _lock:
        for name, value in options.items():
            if value is None:
                _explicit.pop(name, None)
            else:
                _explicit[name] = Path(value).expanduser() if name == "cache_dir" else value
    return settings()


def settings() -> Settings:
    """The settings in force: configure() values, then SORA_NB_* / OPENAI_* variables, then defaults."""
    values: dict[str, Any] = {}
    for name, variables in _ENV.items():
        for variable in variables:
            if os.environ.get(variable):
                values[name] = Path(os.environ[variable]).expanduser() if name == "cache_dir" else os.environ[variable]
                break
    with _lock:
        values.update(_explicit)
    return replace(Settings(), **values)


@dataclass(frozen=True)
class Backend:
    """Where jobs go: the URL, the key, a label for people and an identity for request fingerprints."""

    base_url: str
    api_key: str | None = field(repr=False)
    provider: str
    label: str
    identity: str
    local: bool


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
    provider = get_provider(current.provider)
    url = httpx.URL(provider.base_url(current.base_url))
    return Backend(
        base_url=str(url),
        api_key=current.api_key,
        provider=current.provider,
        label=url.host or str(url),
        identity=f"{url.scheme}://{url.netloc.decode()}{url.path}",
        local=False,
    )
