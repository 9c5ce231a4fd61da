"""sora_nb: live AI video generation in Jupyter notebooks, for any OpenAI-style ``/v1/videos`` endpoint.

``generate(prompt)`` returns a live widget at once; ``submit(prompt)`` is the widget-free job for code. With
nothing configured, jobs go to an embedded local preview server (synthetic videos, no key, offline).
"""

from __future__ import annotations

from sora_nb.cache import CachedVideo, VideoCache
from sora_nb.client import AsyncVideosClient
from sora_nb.config import Settings, configure, settings
from sora_nb.costs import Estimate, estimate, price_per_second, spent
from sora_nb.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConnectError,
    DeadlineExceededError,
    DownloadError,
    GenerationFailedError,
    InvalidRequestError,
    JobCancelledError,
    NotFoundError,
    NotReadyError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    SoraError,
    VideoExpiredError,
)
from sora_nb.gallery import Gallery, history, sweep
from sora_nb.jobs import Job, submit
from sora_nb.video import Video, parse_video
from sora_nb.widget import VideoJob, attach, edit, extend, generate, remix

__version__ = "0.1.0"


def cache() -> VideoCache:
    """The cache for the settings in force."""
    return VideoCache(settings().cache_dir)


__all__ = [
    "AsyncVideosClient",
    "AuthenticationError",
    "BudgetExceededError",
    "CachedVideo",
    "ConnectError",
    "DeadlineExceededError",
    "DownloadError",
    "Estimate",
    "Gallery",
    "GenerationFailedError",
    "InvalidRequestError",
    "Job",
    "JobCancelledError",
    "NotFoundError",
    "NotReadyError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "Settings",
    "SoraError",
    "Video",
    "VideoCache",
    "VideoExpiredError",
    "VideoJob",
    "__version__",
    "attach",
    "cache",
    "configure",
    "edit",
    "estimate",
    "extend",
    "generate",
    "history",
    "parse_video",
    "price_per_second",
    "remix",
    "settings",
    "spent",
    "submit",
    "sweep",
]
