"""The anywidget views over jobs: ``VideoJob`` (one job: status, progress, then a player), ``Gallery`` (many:
a live sweep or the cache's history, compare, export).

``_base`` holds what both share (throttle, chunked file transfer, poster, display bundle), ``export`` the contact
sheet; ``static/`` the plain ESM and CSS of the front end (no build step).
"""

from __future__ import annotations

from sora_nb.widgets.gallery import Card, Gallery
from sora_nb.widgets.job import VideoJob

__all__ = ["Card", "Gallery", "VideoJob"]
