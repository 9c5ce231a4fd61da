"""The settings of a class relay (:class:`RelayConfig`); light, so the CLI builds its flags without the server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UPSTREAM_KEY_ENV = "SORA_NB_UPSTREAM_KEY"
"""The only place the relay reads the upstream key from (never a flag: command lines are visible to all users)."""


@dataclass(frozen=True)
class RelayConfig:
    """What ``sora-nb serve --engine relay`` forwards to and how it meters students.

    ``upstream`` is any endpoint sora_nb's client talks to, with ``upstream_provider`` its profile; ``prices``
    a JSON file of prices for gateway models; ``share`` False (``--no-share``) gives every request its own
    upstream job (for exams); ``user_jobs`` caps each student's unfinished videos, ``creates_per_minute``
    their creates; ``poll_interval`` is the seconds between polls of an upstream job without a poll hint.
    """

    upstream: str
    upstream_provider: str = "openai"
    prices: Path | None = None
    share: bool = True
    user_jobs: int = 2
    creates_per_minute: int = 10
    poll_interval: float = 1.0
