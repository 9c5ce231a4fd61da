"""``VideoJob``: the live widget of a job (status, progress, then an inline player), built on anywidget.

The widget observes a :class:`~sora_nb.jobs.Job`; it makes no HTTP requests. Video bytes never sit in synced
state: the front end asks for them when it renders a completed job, and they arrive as binary chunks of at
most 4 MiB read from the cache. ``embed=True`` puts the MP4 in the widget state (a self-contained notebook).
"""

from __future__ import annotations

import base64
import html
import logging
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import traitlets

from sora_nb.cache import open_asset
from sora_nb.jobs import Job
from sora_nb.request import OPEN_PARAMS, open_labels
from sora_nb.widgets._base import FINISHED, Throttle, Widget, assemble, poster_url, send_file

log = logging.getLogger("sora_nb")

POSTER_WIDTH = 320


def _epoch_ms(monotonic: float | None) -> float:
    if monotonic is None:
        return 0.0
    return (time.time() - (time.monotonic() - monotonic)) * 1000


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


class VideoJob(Widget):
    """A live job widget; for code it is a job too: ``id``, ``path``, ``video``, ``result()``, ``await``."""

    _esm = assemble("common.js", "job.js")
    _css = assemble("common.css", "job.css")

    prompt = traitlets.Unicode("", help="The request's prompt (the record's, for an attached job).").tag(sync=True)
    video_model = traitlets.Unicode("", help="The model asked for (ipywidgets has `model`).").tag(sync=True)
    size = traitlets.Unicode("", help='The frame size, like "1280x720", once known.').tag(sync=True)
    seconds = traitlets.Unicode("", help="The clip's length in seconds, as text.").tag(sync=True)
    open_params = traitlets.List(
        traitlets.Unicode(), help='The open-model parameters asked for, as labels ("steps=20").'
    ).tag(sync=True)
    backend = traitlets.Unicode("", help="Where the job runs: the host, after the engine's name if any.").tag(sync=True)
    local = traitlets.Bool(False, help="True on the embedded local preview server.").tag(sync=True)
    status = traitlets.Unicode("pending", help="The job's status (progress.WORDS has them all).").tag(sync=True)
    waiting = traitlets.Unicode(
        "", help='Why a queued job waits ("waiting: the engine at host:port runs 1 job at a time"); "" otherwise.'
    ).tag(sync=True)
    progress = traitlets.Int(
        -1, help="Percent done, as the server says; -1 when it gives no real percentage (job.progress None)."
    ).tag(sync=True)
    started_at = traitlets.Float(0.0, help="When the job started, in Unix ms (0 before).").tag(sync=True)
    finished_at = traitlets.Float(0.0, help="When the job finished, in Unix ms (0 before).").tag(sync=True)
    eta_at = traitlets.Float(0.0, help="When the job should finish, in Unix ms (0: unknown or done).").tag(sync=True)
    eta_source = traitlets.Unicode("", help='Where eta_at comes from: "progress", "history" or "".').tag(sync=True)
    history_jobs = traitlets.Int(0, help="How many similar past jobs a history ETA is drawn from.").tag(sync=True)
    history_seconds = traitlets.Float(0.0, help="How long those past jobs took (the median, seconds).").tag(sync=True)
    bytes_done = traitlets.Int(0, help="Bytes of the MP4 downloaded so far.").tag(sync=True)
    bytes_total = traitlets.Int(0, help="The MP4's size in bytes (0 until known).").tag(sync=True)
    video_id = traitlets.Unicode("", help="The server's ID of the video (empty until given).").tag(sync=True)
    width = traitlets.Int(0, help="The frame width in pixels (0 until known).").tag(sync=True)
    height = traitlets.Int(0, help="The frame height in pixels (0 until known).").tag(sync=True)
    poster = traitlets.Unicode("", help="A small JPEG poster of the finished video, a data: URL.").tag(sync=True)
    error_code = traitlets.Unicode("", help="The server's error code, else the error's class name.").tag(sync=True)
    error_message = traitlets.Unicode("", help="What happened (the error's message).").tag(sync=True)
    error_hint = traitlets.Unicode("", help="What to do about it (error.hint, from errors.ADVICE).").tag(sync=True)
    embedded = traitlets.Bytes(b"", help="The MP4 itself, with embed=True (else empty).").tag(sync=True)

    def __init__(self, job: Job, *, embed: bool = False, **kwargs: Any) -> None:
        """The widget of ``job`` (``sora_nb.generate`` makes one); ``embed=True`` keeps the finished MP4 in the
        widget state, so a saved notebook plays it without a kernel. Outside Jupyter a text progress line shows."""
        super().__init__(**kwargs)
        self.embed = embed
        self._throttle = Throttle(lambda: self._push())  # late-bound: _push may be wrapped
        self._unsubscribe: Any = None
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
        """``await widget``: the cached path, as ``result()`` gives it, without blocking the event loop."""
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
            self.open_params = open_labels(request)
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
            self._throttle(urgent=job.status in FINISHED)

    def _push(self) -> None:
        job = self._job
        video = job.video
        state: dict[str, Any] = {
            # the request's, once the job knows its engine (a served model fills an unset one); the record's
            # below. First: an observer of the status then sees the model that goes with it
            "video_model": str(job.request.get("model") or self.video_model),
            "status": job.status,
            "waiting": job.note or "",
            "progress": job.progress if job.progress is not None else -1,
            "backend": job.backend,
            "local": job.local,
            "started_at": _epoch_ms(job.started),
            "finished_at": _epoch_ms(job.finished),
            "eta_at": (time.time() + job.eta) * 1000 if job.eta is not None and not job.done else 0.0,
            "eta_source": job.eta_source or "",
            "history_jobs": job.history.jobs if job.history is not None else 0,
            "history_seconds": job.history.seconds if job.history is not None else 0.0,
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
            state["poster"] = poster_url(job.thumbnail, POSTER_WIDTH)
            if self.embed and job.path is not None:
                state["embedded"] = _embedded(job.path)
        if job.status in ("failed", "cancelled") and job.error is not None:
            state["error_code"] = job.error.code or type(job.error).__name__
            state["error_message"] = job.error.message  # what happened; what to do is the hint, shown once
            state["error_hint"] = job.error.hint
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
        from sora_nb.jobs import remix

        widget = VideoJob(remix(self._job, prompt), embed=self.embed)
        self._show_below(widget)
        return widget

    # ----- display ------------------------------------------------------------------------------------------
    def _html(self) -> str:
        job = self._job
        poster = poster_url(job.thumbnail, POSTER_WIDTH) if job.status == "completed" else ""
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

    def _plain(self) -> str:
        """The request, whatever the job's state (the ID and status are not known yet when a cell shows it)."""
        request = self._job.request
        if self._job.kind == "attach":
            return f"VideoJob(attached to {self._job.id!r})"
        shown = [repr(str(request.get("prompt") or ""))] + [
            f"{name}={request[name]!r}"
            for name in ("model", "size", "seconds", "seed", *OPEN_PARAMS)
            if request.get(name) is not None
        ]
        return f"VideoJob({', '.join(shown)})"
