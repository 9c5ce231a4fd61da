"""``VideoJob``: the live widget of a job (status, progress, then an inline player), built on anywidget.

The widget observes a :class:`~sora_nb.jobs.Job`; it makes no HTTP requests. Video bytes never sit in synced
state: the front end asks for them when it renders a completed job, and they arrive as binary chunks of at
most 4 MiB read from the cache. ``embed=True`` puts the MP4 in the widget state (a self-contained notebook).
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets
from PIL import Image

from sora_nb import errors
from sora_nb.cache import open_asset
from sora_nb.errors import one_line
from sora_nb.jobs import Job
from sora_nb.media import MAX_IMAGE_PIXELS

log = logging.getLogger("sora_nb")

STATIC = Path(__file__).parent / "static"
CHUNK_BYTES = 4 * 1024 * 1024
MIN_INTERVAL = 0.1  # at most 10 state updates per second
POSTER_WIDTH = 320
POSTER_FORMATS = ("WEBP", "PNG", "JPEG")  # what the client accepts as a thumbnail
TERMINAL = ("completed", "failed", "cancelled")
_decoding = threading.Lock()  # warnings.catch_warnings() changes process-wide state


def hint_for(error: errors.SoraError) -> str:
    """What the user can do about an error, in a sentence."""
    if isinstance(error, errors.GenerationFailedError) and error.code == "moderation_blocked":
        return "The service's moderation refused the prompt: rephrase it, then press Retry."
    hints: list[tuple[type[errors.SoraError], str]] = [
        (errors.AuthenticationError, "Check the key: sora_nb.configure(api_key=...) or SORA_NB_API_KEY."),
        (errors.InvalidRequestError, "Fix the parameter named above and run the cell again."),
        (errors.RateLimitError, "The service is busy: wait a moment, then press Retry."),
        (errors.ServerError, "The service had trouble: press Retry in a moment."),
        (errors.ConnectError, "Check the base URL and your network, then press Retry."),
        (errors.DeadlineExceededError, "The job is not lost: sora_nb.attach(video_id) picks it up later."),
        (errors.VideoExpiredError, "Press Retry to generate it again."),
        (errors.JobCancelledError, "Press Retry to start a new job."),
        (errors.BudgetExceededError, "Raise the budget with sora_nb.configure(budget_usd=...) or ask for less."),
        (errors.NotFoundError, "The job is gone on the server: press Retry for a new one."),
    ]
    for kind, text in hints:
        if isinstance(error, kind):
            return text
    return "Press Retry to try again."


def _epoch_ms(monotonic: float | None) -> float:
    if monotonic is None:
        return 0.0
    return (time.time() - (time.monotonic() - monotonic)) * 1000


def poster_jpeg(path: Path | None, width: int = POSTER_WIDTH) -> bytes:
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


def _poster(path: Path | None) -> str:
    jpeg = poster_jpeg(path)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode() if jpeg else ""


def _embedded(path: Path) -> bytes:
    """The cached MP4's bytes for ``embed=True``, or ``b""`` (logged) when it is gone or not the cache's own."""
    try:
        with open_asset(path) as f:
            return f.read()
    except OSError as exc:
        log.warning("sora_nb: not embedding %s: %s", path, exc)
        return b""


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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


class VideoJob(anywidget.AnyWidget):
    """A live job widget; for code it is a job too: ``id``, ``path``, ``video``, ``result()``, ``await``."""

    _esm = STATIC / "widget.js"
    _css = STATIC / "widget.css"

    prompt = traitlets.Unicode("").tag(sync=True)
    video_model = traitlets.Unicode("").tag(sync=True)
    size = traitlets.Unicode("").tag(sync=True)
    seconds = traitlets.Unicode("").tag(sync=True)
    backend = traitlets.Unicode("").tag(sync=True)
    local = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode("pending").tag(sync=True)
    progress = traitlets.Int(-1).tag(sync=True)
    started_at = traitlets.Float(0.0).tag(sync=True)
    finished_at = traitlets.Float(0.0).tag(sync=True)
    eta_at = traitlets.Float(0.0).tag(sync=True)
    bytes_done = traitlets.Int(0).tag(sync=True)
    bytes_total = traitlets.Int(0).tag(sync=True)
    video_id = traitlets.Unicode("").tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    poster = traitlets.Unicode("").tag(sync=True)
    error_code = traitlets.Unicode("").tag(sync=True)
    error_message = traitlets.Unicode("").tag(sync=True)
    error_hint = traitlets.Unicode("").tag(sync=True)
    embedded = traitlets.Bytes(b"").tag(sync=True)

    def __init__(self, job: Job, *, embed: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.embed = embed
        self.below = ipywidgets.Output()
        self._box = ipywidgets.VBox([self, self.below])
        self._throttle = Throttle(lambda: self._push())  # late-bound: _push may be wrapped
        self._unsubscribe: Any = None
        self.on_msg(self._on_message)
        self._bind(job)
        self._progress: threading.Thread | None = None
        if not _in_notebook():
            from sora_nb.progress import follow

            self._progress = threading.Thread(target=follow, args=(job,), name="sora-nb-progress", daemon=True)
            self._progress.start()

    # ----- the job, for code ----------------------------------------------------------------------------------
    @property
    def job(self) -> Job:
        """The job this widget shows (it changes when Retry is pressed)."""
        return self._job

    @property
    def id(self) -> str | None:
        """The video ID, once the server has given one."""
        return self._job.id

    @property
    def path(self) -> Path | None:
        """The cached MP4, once the job has completed."""
        return self._job.path

    @property
    def video(self) -> Any:
        """The normalised record of the video (``sora_nb.Video``), once known."""
        return self._job.video

    def result(self, timeout: float | None = None) -> Path:
        """Wait for the video and return its cached path (raises the job's SoraError)."""
        try:
            return self._job.result(timeout)
        finally:
            if self._progress is not None:
                self._progress.join(timeout=1.0)  # let the text progress line finish first

    def __await__(self) -> Generator[Any, None, Path]:
        return self._job.__await__()

    def cancel(self) -> None:
        """Cancel the job."""
        self._job.cancel()

    def __repr__(self) -> str:
        return f"VideoJob(id={self._job.id!r}, status={self._job.status!r})"

    # ----- state --------------------------------------------------------------------------------------------
    def _bind(self, job: Job) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._job = job
        request = job.request
        size = str(request.get("size") or "")
        width, _, height = size.partition("x")
        with self.hold_sync():
            self.prompt = str(request.get("prompt") or "")
            self.video_model = str(request.get("model") or "")
            self.size = size
            self.seconds = str(request.get("seconds") or "")
            self.width, self.height = (int(width), int(height)) if width.isdigit() and height.isdigit() else (0, 0)
            self.video_id = ""
            self.poster = ""
            self.embedded = b""
            self.error_code = self.error_message = self.error_hint = ""
        self._unsubscribe = job.observe(self._on_job)
        self._push()

    def _on_job(self, job: Job) -> None:
        """Observer (runner thread): at most 10 updates a second; a final state at once."""
        if job is self._job:
            self._throttle(urgent=job.status in TERMINAL)

    def _push(self) -> None:
        job = self._job
        video = job.video
        state: dict[str, Any] = {
            "status": job.status,
            "progress": job.progress if job.progress is not None else -1,
            "backend": job.backend,
            "local": job.local,
            "started_at": _epoch_ms(job.started),
            "finished_at": _epoch_ms(job.finished),
            "eta_at": (time.time() + job.eta) * 1000 if job.eta is not None and not job.done else 0.0,
            "bytes_done": job.bytes_done,
            "bytes_total": job.bytes_total or 0,
            "video_id": job.id or "",
        }
        if video is not None:
            state["prompt"] = self.prompt or video.prompt or ""  # an attached job knows it only from the record
            state["video_model"] = video.model or self.video_model
            state["seconds"] = video.seconds or self.seconds
            if video.size and "x" in video.size:
                w, _, h = video.size.partition("x")
                if w.isdigit() and h.isdigit():
                    state.update(size=video.size, width=int(w), height=int(h))
        if job.status == "completed" and not self.poster:
            state["poster"] = _poster(job.thumbnail)
            if self.embed and job.path is not None:
                state["embedded"] = _embedded(job.path)
        if job.status in ("failed", "cancelled") and job.error is not None:
            state["error_code"] = job.error.code or type(job.error).__name__
            state["error_message"] = str(job.error)
            state["error_hint"] = hint_for(job.error)
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

    # ----- messages from the front end ----------------------------------------------------------------------
    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "video":
            self.send_video()
        elif kind == "cancel":
            self.cancel()
        elif kind == "retry":
            self.retry()
        elif kind == "remix" and isinstance(content.get("prompt"), str) and content["prompt"].strip():
            self.remix(content["prompt"])

    def send_video(self) -> int:
        """Send the cached MP4 to the front end in chunks of at most 4 MiB (or one ``video-error`` answer when
        there is none); returns the number of chunks."""
        return send_file(self, self._job.path, {"id": self._job.id or ""})

    def retry(self) -> None:
        """Start a new job for the same request (only when asked: it may cost money) and show it here."""
        self._bind(self._job.retry())

    def remix(self, prompt: str) -> VideoJob:
        """A remix of this video as a new widget, shown below this one."""
        from IPython.display import display

        from sora_nb.jobs import remix

        widget = VideoJob(remix(self._job, prompt), embed=self.embed)
        with self.below:
            display(widget)  # type: ignore[no-untyped-call]
        return widget

    # ----- display ------------------------------------------------------------------------------------------
    def _html(self) -> str:
        job = self._job
        poster = _poster(job.thumbnail) if job.status == "completed" else ""
        media = f'<img src="{poster}" alt="poster" style="max-width:320px;border-radius:6px">' if poster else ""
        embedded = _embedded(job.path) if self.embed and job.path is not None and job.status == "completed" else b""
        if embedded:
            data = base64.b64encode(embedded).decode()
            media = f'<video controls playsinline src="data:video/mp4;base64,{data}" style="max-width:100%"></video>'
        label = f" · {html.escape(job.backend)}" if job.backend else ""
        return (
            '<div class="sora-static" style="font-family:sans-serif">'
            f"<div><strong>{html.escape(str(job.request.get('prompt', '')))}</strong></div>{media}"
            f"<div>status: {html.escape(job.status)}{label} · id: {html.escape(job.id or 'pending')}</div></div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[Any, Any], dict[Any, Any]] | None:
        """The widget view (this card and, below it, remixes made from it), a ``text/plain`` naming the request
        (deterministic: the ID and status are not known yet when a cell displays it) and a ``text/html`` fallback
        for nbconvert and GitHub."""
        shown = self._box._repr_mimebundle_(**kwargs)
        data, metadata = shown if isinstance(shown, tuple) else (shown or {}, {})
        return {**data, "text/plain": self._summary(), "text/html": self._html()}, dict(metadata)

    def _summary(self) -> str:
        request = self._job.request
        if self._job.kind == "attach":
            return f"VideoJob(attached to {self._job.id!r})"
        shown = [repr(str(request.get("prompt") or ""))] + [
            f"{name}={request[name]!r}"
            for name in ("model", "size", "seconds", "seed")
            if request.get(name) is not None
        ]
        return f"VideoJob({', '.join(shown)})"
