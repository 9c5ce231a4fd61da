"""The embedded local Videos API server: real MP4 "local preview" videos, dialects and faults, offline.

>>> from sora_nb.server import start
>>> with start(speed=10) as server:          # doctest: +SKIP
...     print(server.base_url, server.key)

Importing the package is light: the settings and dialects load at once, while the app and its launcher
(Starlette, uvicorn, the renderer) load on first use of ``start``, ``serve``, ``ServerHandle`` or ``VideosServer``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sora_nb.server.config import DEFAULT_BLOCKED_WORDS, DEFAULT_KEY, ServerConfig, default_data_dir
from sora_nb.server.dialects import DIALECTS

if TYPE_CHECKING:
    from sora_nb.server.app import VideosServer
    from sora_nb.server.launch import ServerHandle, serve, start

_LAZY = {
    "VideosServer": "sora_nb.server.app",
    "ServerHandle": "sora_nb.server.launch",
    "serve": "sora_nb.server.launch",
    "start": "sora_nb.server.launch",
}

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


def __getattr__(name: str) -> Any:
    """Load the app and its launcher on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
