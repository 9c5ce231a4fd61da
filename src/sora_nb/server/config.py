"""The settings of a local server (:class:`ServerConfig`) and their defaults.

Light on purpose: importing this module loads no web framework, server or media library, so the CLI can
build its ``serve`` flags (and answer ``sora-nb cache path``) without paying for the server.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from sora_nb.server.addresses import is_loopback, is_wildcard
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from sora_nb.server.relay.settings import RelayConfig

DEFAULT_KEY = "sora-nb-local"
DEFAULT_BLOCKED_WORDS = ("nsfw", "gore", "moderation-test")


def default_data_dir() -> Path:
    """Where the local server keeps jobs and files unless told otherwise."""
    return platformdirs.user_cache_path("sora_nb") / "local-server"


@dataclass
class ServerConfig:
    """Settings of a local server; the CLI flags of ``sora-nb serve`` carry the same names.

    ``key`` None means ``sora-nb-local`` on loopback and a random key beyond it; ``allow_remote_inputs`` None
    means on when listening on loopback only. ``allow_private_inputs`` is for tests: networks (``"127.0.0.1"``)
    that ``image_url`` may reach although they are not public. It makes the server a way into those networks,
    so never set it on a server others can reach. ``public_url`` is the origin clients reach the server at
    (``http://classroom-pc.local:8000``); the URLs the server hands out use it.
    """

    dialect: str = "openai"
    speed: float = 1.0
    data_dir: Path | None = None
    key: str | None = field(default=None, repr=False)
    faults: str | None = None
    retention: float = 86400.0
    max_active: int = 32
    blocked_words: tuple[str, ...] = DEFAULT_BLOCKED_WORDS
    render_workers: int = 2
    cdn_ttl: float = 300.0
    poll_hint: bool = True
    allow_remote_inputs: bool | None = None
    allow_private_inputs: tuple[str, ...] = ()
    public_url: str | None = None
    served_model: str = DEFAULT_SERVED_MODEL
    """The model an engine dialect serves (vLLM-Omni and oMLX refuse another name; LocalAI needs it)."""
    engine: str = "synthetic"
    """What makes the videos: ``synthetic`` (local previews) or ``relay`` (forwarded upstream, see ``relay``)."""
    relay: RelayConfig | None = None
    """The class relay's settings, for ``engine="relay"``."""

    def bound(self, address: str) -> ServerConfig:
        """This config with the defaults that depend on where the server listens filled in for ``address``
        (the bound IP); ValueError for the public default key or an unusable ``public_url`` beyond loopback."""
        local = is_loopback(address)
        if not local and self.key == DEFAULT_KEY:
            raise ValueError(
                f"the key {DEFAULT_KEY!r} is public, so a server listening beyond loopback ({address}) cannot use "
                "it; give a key of your own (--key, or key= in start()), or leave it out to get a random one"
            )
        if self.public_url is not None:
            _check_public_url(self.public_url)
        return replace(
            self,
            key=self.key if self.key is not None else DEFAULT_KEY if local else secrets.token_urlsafe(16),
            allow_remote_inputs=local if self.allow_remote_inputs is None else self.allow_remote_inputs,
        )


def _check_public_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or is_wildcard(parts.hostname):
        raise ValueError(
            f"--public-url {url[:200]!r} must be an http(s) URL with a host other machines can reach, "
            "like http://classroom-pc.local:8000"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"--public-url {url[:200]!r} must hold no query, fragment or user name")
