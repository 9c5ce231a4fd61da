"""What both widgets share: the assembly of their front-end modules (``common.js`` joined with their own, Python's
tables filled in), the throttle on state updates, chunked file transfer, the one poster decoder, and the
``Widget`` base (an ``Output`` below the view; the display bundle with deterministic ``text/plain`` and a
``text/html`` fallback).

Nothing here makes an HTTP request; files are read from the cache only through ``open_asset`` (no links).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
from PIL import Image

from sora_nb.cache import open_asset
from sora_nb.errors import one_line
from sora_nb.media import MAX_IMAGE_PIXELS
from sora_nb.progress import WORDS

log = logging.getLogger("sora_nb")

STATIC = Path(__file__).parent / "static"
CHUNK_BYTES = 4 * 1024 * 1024  # the most one video-chunk message carries
MIN_INTERVAL = 0.1  # at most 10 state updates per second
CARD_POSTER_WIDTH = 256  # the poster of a gallery card or a contact sheet's figure
# The job statuses after which a widget's job changes no more (not video.TERMINAL: the server's statuses).
FINISHED = ("completed", "failed", "cancelled")
POSTER_FORMATS = ("WEBP", "PNG", "JPEG")  # what the client accepts as a thumbnail
_TABLES: dict[str, object] = {"/* WORDS */ {}": WORDS, "/* FINISHED */ []": list(FINISHED)}
_decoding = threading.Lock()  # warnings.catch_warnings() changes process-wide state

Bundle = tuple[dict[Any, Any], dict[Any, Any]]


def assemble(*names: str) -> str:
    """The files ``names`` of ``static/`` joined into one ESM module or stylesheet (``common.js`` first: anywidget
    loads ``_esm`` from a Blob URL, where a relative ``import`` cannot work), with the tables Python holds filled
    into common.js's markers: the status words (``progress.WORDS``) and ``FINISHED``."""
    text = "\n".join((STATIC / name).read_text(encoding="utf-8") for name in names)
    for marker, table in _TABLES.items():
        text = text.replace(marker, json.dumps(table))
    return text


def poster_jpeg(path: Path | None, width: int) -> bytes:
    """A JPEG poster at most ``width`` wide made from a cached image; ``b""`` when there is none or it cannot be
    read safely (not an image, truncated, a link, or declaring more than ``MAX_IMAGE_PIXELS``: a tiny file may
    declare a decompression bomb). The size comes from the header, before anything is decoded."""
    if path is None:
        return b""
    try:
        with _decoding, warnings.catch_warnings(), open_asset(path) as f:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f, formats=POSTER_FORMATS) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise Image.DecompressionBombError(f"it declares {image.width}x{image.height} pixels")
                image.draft("RGB", (width, width * 4))  # a JPEG decodes at a fraction of its size
                image.thumbnail((width, width * 4))
                out = io.BytesIO()
                image.convert("RGB").save(out, "JPEG", quality=70)
    except Exception as exc:  # whatever untrusted bytes do to a decoder, only the poster is lost
        log.warning("sora_nb: no poster from %s (%s: %s)", path, type(exc).__name__, one_line(str(exc), 200))
        return b""
    return out.getvalue()


def poster_url(path: Path | None, width: int) -> str:
    """:func:`poster_jpeg` as a ``data:`` URL, or ``""`` when there is no poster."""
    jpeg = poster_jpeg(path, width)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode() if jpeg else ""


def send_file(widget: anywidget.AnyWidget, path: Path | None, address: dict[str, Any]) -> int:
    """Stream a cached MP4 to a widget's front end as ``video-chunk`` messages of at most 4 MiB (``address`` plus
    ``part``, ``count``, ``size``), reading one chunk at a time; returns the number of chunks.

    Without a file to send (none, removed since, or a link) the answer is one ``video-error`` message with what
    happened and what to do, so the front end never waits for a video that will not come.
    """
    message = "The video file is not in the cache (not downloaded yet, or removed since): run the cell again."
    try:
        if path is not None:
            with open_asset(path) as f:
                size = os.fstat(f.fileno()).st_size
                count = max(1, -(-size // CHUNK_BYTES))
                for part in range(count):
                    chunk = f.read(CHUNK_BYTES)
                    widget.send({"type": "video-chunk", **address, "part": part, "count": count, "size": size}, [chunk])
                return count
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("sora_nb: not sending %s: %s", path, exc)
        message = (
            f"The cached video was not sent: {one_line(str(exc), 200)}. A shared cache may hold links to other "
            "people's files: run the cell again to download a copy of its own."
        )
    widget.send({"type": "video-error", **address, "message": message})
    return 0


class Throttle:
    """Runs ``push`` at most once per ``interval`` seconds, the newest state winning; urgent calls run at once."""

    def __init__(self, push: Callable[[], None], interval: float = MIN_INTERVAL) -> None:
        self._push = push
        self._interval = interval
        self._lock = threading.Lock()
        self._last = 0.0
        self._timer: threading.Timer | None = None

    def __call__(self, *, urgent: bool = False) -> None:
        """Push now if the last push is ``interval`` old (or ``urgent``), else once when it is."""
        now = time.monotonic()
        with self._lock:
            if not urgent and now - self._last < self._interval:
                if self._timer is None:
                    self._timer = threading.Timer(self._interval - (now - self._last), self._deferred)
                    self._timer.daemon = True
                    self._timer.start()
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last = now
        self._push()

    def _deferred(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self._push()


class Widget(anywidget.AnyWidget):
    """A sora_nb widget: its view with an ``Output`` below it (where players and remixes opened from it appear),
    displayed with a ``text/plain`` and a ``text/html`` of its own (:meth:`_plain`, :meth:`_html`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.below = ipywidgets.Output()
        self._box = ipywidgets.VBox([self, self.below])
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A message from the front end."""

    def _show_below(self, widget: anywidget.AnyWidget) -> None:
        from IPython.display import display

        with self.below:
            display(widget)  # type: ignore[no-untyped-call]

    def _plain(self) -> str:
        return repr(self)

    def _html(self) -> str:
        return ""

    def _repr_mimebundle_(self, **kwargs: Any) -> Bundle | None:
        """The view (and what is below it), a deterministic ``text/plain`` (nbval compares it) and a ``text/html``
        fallback for nbconvert and GitHub."""
        shown = self._box._repr_mimebundle_(**kwargs)
        data, metadata = shown if isinstance(shown, tuple) else (shown or {}, {})
        return {**data, "text/plain": self._plain(), "text/html": self._html()}, dict(metadata)
