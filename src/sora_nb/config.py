"""Configuration: ``configure()`` over environment variables over defaults; where jobs go is engine.py's to say.

With no base URL configured, jobs go to the embedded local server (``Settings.local``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from sora_nb.providers import get_provider


def default_cache_dir() -> Path:
    """The platform's user cache directory for sora_nb: the cache when neither configure() nor
    ``SORA_NB_CACHE_DIR`` names one."""
    return platformdirs.user_cache_path("sora_nb") / "cache"


@dataclass(frozen=True)
class Settings:
    """Resolved settings; the API key is never part of the repr."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    provider: str | None = None
    """The profile; None: detected from what ``base_url`` serves (``openai`` when nothing is recognised)."""
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
    """Set options for this process: base_url, api_key, provider (unset: detected from what base_url serves;
    ``"openai"`` switches detection off), cache_dir, model, max_concurrency, timeout,
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
