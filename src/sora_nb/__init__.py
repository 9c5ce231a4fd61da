"""sora_nb: live AI video generation in Jupyter notebooks, for any OpenAI-style ``/v1/videos`` endpoint.

``generate(prompt)`` returns a live widget at once; ``submit(prompt)`` is the widget-free job for code. With
nothing configured, jobs go to an embedded local preview server (synthetic videos, no key, offline).

Re-exports only, imported on first use (PEP 562): ``import sora_nb.cli`` loads no widget, HTTP or video library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sora_nb.errors import (  # the error hierarchy: cheap to import, so not lazy
    AuthenticationError,
    BudgetExceededError,
    ConnectError,
    DeadlineExceededError,
    DownloadError,
    EngineBusyError,
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

if TYPE_CHECKING:
    from sora_nb import jobs
    from sora_nb.api import (
        attach,
        edit,
        estimate,
        extend,
        generate,
        history,
        playground,
        relay_usage,
        remix,
        spent,
        submit,
        sweep,
        video_cache,
    )
    from sora_nb.cache import CachedVideo, VideoCache
    from sora_nb.client import AsyncVideosClient
    from sora_nb.config import Settings, configure, settings
    from sora_nb.costs import Estimate, price_per_second
    from sora_nb.jobs import Job
    from sora_nb.video import Video, parse_video
    from sora_nb.widgets.gallery import Gallery
    from sora_nb.widgets.job import VideoJob

__version__ = "0.1.0"

_VERBS: tuple[str, ...] = ("attach", "edit", "estimate", "extend", "generate", "history", "playground")
_VERBS += ("remix", "spent", "submit", "sweep")  # two lines: one would pass the line limit
# where each re-exported name is defined (a name mapped to None is the module itself)
_HOME: dict[str, tuple[str, str | None]] = {
    **{name: ("sora_nb.api", name) for name in (*_VERBS, "video_cache")},
    "submit": ("sora_nb.jobs", "submit"),  # defined there: the widget-free verb needs no widget library
    "AsyncVideosClient": ("sora_nb.client", "AsyncVideosClient"),
    "CachedVideo": ("sora_nb.cache", "CachedVideo"),
    "Estimate": ("sora_nb.costs", "Estimate"),
    "Gallery": ("sora_nb.widgets.gallery", "Gallery"),
    "Job": ("sora_nb.jobs", "Job"),
    "Settings": ("sora_nb.config", "Settings"),
    "Video": ("sora_nb.video", "Video"),
    "VideoCache": ("sora_nb.cache", "VideoCache"),
    "VideoJob": ("sora_nb.widgets.job", "VideoJob"),
    "configure": ("sora_nb.config", "configure"),
    "jobs": ("sora_nb.jobs", None),
    "parse_video": ("sora_nb.video", "parse_video"),
    "price_per_second": ("sora_nb.costs", "price_per_second"),
    "relay_usage": ("sora_nb.api", "relay_usage"),
    "settings": ("sora_nb.config", "settings"),
}


def __getattr__(name: str) -> Any:
    """A re-exported name, imported from its module the first time it is asked for."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'sora_nb' has no attribute {name!r}")
    module = importlib.import_module(home[0])
    value = module if home[1] is None else getattr(module, home[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AsyncVideosClient",
    "AuthenticationError",
    "BudgetExceededError",
    "CachedVideo",
    "ConnectError",
    "DeadlineExceededError",
    "DownloadError",
    "EngineBusyError",
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
    "configure",
    "edit",
    "estimate",
    "extend",
    "generate",
    "history",
    "jobs",
    "parse_video",
    "playground",
    "price_per_second",
    "relay_usage",
    "remix",
    "settings",
    "spent",
    "submit",
    "sweep",
    "video_cache",
]
