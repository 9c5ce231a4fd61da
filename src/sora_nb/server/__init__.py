"""The embedded local Videos API server: real MP4 "local preview" videos, dialects and faults, offline.

>>> from sora_nb.server import start
>>> with start(speed=10) as server:          # doctest: +SKIP
...     print(server.base_url, server.key)
"""

from __future__ import annotations

from sora_nb.server.app import DEFAULT_BLOCKED_WORDS, DEFAULT_KEY, ServerConfig, VideosServer, default_data_dir
from sora_nb.server.dialects import DIALECTS
from sora_nb.server.runner import ServerHandle, serve, start

__all__ = [
    "DEFAULT_BLOCKED_WORDS",
    "DEFAULT_KEY",
    "DIALECTS",
    "ServerConfig",
    "ServerHandle",
    "VideosServer",
    "default_data_dir",
    "serve",
    "start",
]
