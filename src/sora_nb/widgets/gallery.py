"""``Gallery``: many videos side by side: a live sweep, or the cache's history; compare, export.

Cards carry only small text state; posters and videos travel on request as binary messages, so a gallery of
a thousand cached videos opens at once and loads what is on screen.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import traitlets

from sora_nb.cache import CachedVideo
from sora_nb.jobs import Job, attach
from sora_nb.widgets._base import CARD_POSTER_WIDTH, Throttle, Widget, assemble, poster_jpeg, send_file
from sora_nb.widgets.export import contact_sheet
from sora_nb.widgets.job import VideoJob


@dataclass
class Card:
    """One video of a gallery: a live job, or a cached video."""

    label: str
    request: dict[str, Any]
    job: Job | None = None
    cached: CachedVideo | None = None
    start: Callable[[], Job] | None = field(default=None, repr=False)

    @property
    def path(self) -> Path | None:
        """The MP4, when there is one."""
        return self.job.path if self.job is not None else (self.cached.path if self.cached else None)

    @property
    def thumbnail(self) -> Path | None:
        """The thumbnail image, when there is one."""
        return self.job.thumbnail if self.job is not None else (self.cached.thumbnail if self.cached else None)

    @property
    def video_id(self) -> str | None:
        """The video's ID, once known."""
        return self.job.id if self.job is not None else (self.cached.id if self.cached else None)

    def state(self) -> dict[str, Any]:
        """What the front end shows for this card."""
        job = self.job
        status = (
            job.status
            if job is not None
            else ("completed" if self.cached else ("waiting" if self.start is not None else "cancelled"))
        )
        size = str(self.request.get("size") or (self.cached.params["size"] if self.cached else "") or "")
        width, _, height = size.partition("x")
        return {
            "label": self.label,
            "prompt": str(self.request.get("prompt") or (self.cached.prompt if self.cached else "")),
            "status": status,
            "waiting": (job.note if job is not None else None) or "",  # why a queued job waits (Job.note)
            "progress": job.progress if job is not None and job.progress is not None else -1,
            **_eta(job),
            "video_id": self.video_id or "",
            "width": int(width) if width.isdigit() else 0,
            "height": int(height) if height.isdigit() else 0,
            "error": str(job.error) if job is not None and job.error is not None else "",
            "cached": bool(self.cached or (job is not None and job.cached)),
        }


def _eta(job: Job | None) -> dict[str, Any]:
    """A running job's ETA as of now (-1 without one) and where it comes from (see ``etaText`` in common.js)."""
    history = job.history if job is not None else None
    return {
        "eta": job.eta if job is not None and job.eta is not None and not job.done else -1,
        "eta_source": (job.eta_source if job is not None else None) or "",
        "history_jobs": history.jobs if history is not None else 0,
        "history_seconds": history.seconds if history is not None else 0.0,
    }


class Gallery(Widget):
    """Cards of videos: live while a sweep runs; select two or more to compare them in sync."""

    _esm = assemble("common.js", "gallery.js")
    _css = assemble("common.css", "gallery.css")

    title = traitlets.Unicode("", help='The heading, like "Sweep of 4: animal, seed".').tag(sync=True)
    cards = traitlets.List(traitlets.Dict(), help="One small dict per card (Card.state()); no bytes.").tag(sync=True)
    counts = traitlets.Dict(help="How many cards are queued, running, done, failed (and completed).").tag(sync=True)
    estimated_usd = traitlets.Float(0.0, help="What the sweep was estimated to cost.").tag(sync=True)
    spent_usd = traitlets.Float(0.0, help="What the jobs started so far cost.").tag(sync=True)
    local = traitlets.Bool(False, help="True on the embedded local preview server ($0).").tag(sync=True)
    autoplay = traitlets.Bool(True, help="Finished cards play as muted loops (a sweep's do).").tag(sync=True)

    def __init__(
        self,
        title: str,
        items: Sequence[Card],
        *,
        max_concurrency: int | None = None,
        estimated_usd: float = 0.0,
        local: bool = False,
        autoplay: bool = True,
    ) -> None:
        """A gallery of ``items`` (``sora_nb.sweep`` and ``sora_nb.history`` make one): cards that have a ``start``
        are started as slots free up, at most ``max_concurrency`` at once (None: all)."""
        super().__init__(title=title, estimated_usd=estimated_usd, local=local, autoplay=autoplay)
        self.items = list(items)
        self.max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._throttle = Throttle(lambda: self._push())
        self._push()
        self._start_more()

    def __repr__(self) -> str:
        counts = self._counts()
        return f"Gallery({self.title!r}, {len(self.items)} videos, {counts.get('completed', 0)} done)"

    def __len__(self) -> int:
        return len(self.items)

    # ----- running the sweep --------------------------------------------------------------------------------
    def _start_more(self) -> None:
        with self._lock:
            running = sum(1 for c in self.items if c.job is not None and not c.job.done)
            room = len(self.items) if self.max_concurrency is None else self.max_concurrency - running
            starting = [c for c in self.items if c.job is None and c.start is not None][: max(0, room)]
            for card in starting:
                card.job = card.start() if card.start else None
        for card in starting:
            if card.job is not None:
                card.job.observe(self._on_job)
        if starting:
            self._push()

    def _on_job(self, job: Job) -> None:
        if job.done:
            self._start_more()
        self._throttle(urgent=job.done)

    def _counts(self, states: Sequence[dict[str, Any]] | None = None) -> dict[str, int]:
        counts = {"queued": 0, "running": 0, "done": 0, "failed": 0, "completed": 0}
        for state in states if states is not None else [card.state() for card in self.items]:
            status = state["status"]
            key = {
                "completed": "done",
                "failed": "failed",
                "cancelled": "failed",
                "in_progress": "running",
                "downloading": "running",
            }.get(status, "queued")
            counts[key] += 1
            counts["completed"] += status == "completed"
        return counts

    def _push(self) -> None:
        states = [card.state() for card in self.items]
        with self.hold_sync():
            self.cards = states
            self.counts = self._counts(states)
            self.spent_usd = round(sum(c.job.cost for c in self.items if c.job is not None), 4)

    # ----- for code -----------------------------------------------------------------------------------------
    @property
    def jobs(self) -> list[Job]:
        """The jobs started so far."""
        return [card.job for card in self.items if card.job is not None]

    def wait(self, timeout: float | None = None) -> list[Path | None]:
        """Wait for every job; the cached paths in card order (None for a failed or cancelled job)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(card.job is None and card.start is not None for card in self.items):
            self._start_more()
            time.sleep(0.05)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the sweep did not finish in time")
        paths: list[Path | None] = []
        for card in self.items:
            if card.job is None:
                paths.append(card.path)
                continue
            try:
                paths.append(card.job.result(None if deadline is None else max(0.0, deadline - time.monotonic())))
            except Exception:
                paths.append(None)
        self._push()
        return paths

    def cancel_all(self) -> None:
        """Cancel every job not finished yet (and do not start the rest)."""
        with self._lock:  # no card may start once the first cancelled job frees its slot
            for card in self.items:
                card.start = None
        for card in self.items:
            if card.job is not None and not card.job.done:
                card.job.cancel()
        self._push()

    def open_player(self, index: int) -> VideoJob | None:
        """The full player of card ``index`` (with its remix box), shown below the gallery."""
        video_id = self.items[index].video_id
        if video_id is None:
            return None
        widget = VideoJob(attach(video_id))
        self._show_below(widget)
        return widget

    def _plain(self) -> str:
        """A summary that does not depend on how far the jobs have got."""
        return f"Gallery({self.title!r}, {len(self.items)} videos)"

    def _html(self) -> str:
        return f"<p>{html.escape(self.title)}: {len(self.items)} videos</p>"

    def records(self) -> list[dict[str, Any]]:
        """One dict per card: label, prompt, status, video ID, path, request parameters."""
        rows = []
        for card in self.items:
            state = card.state()
            rows.append(
                {
                    **{k: v for k, v in card.request.items() if not k.startswith("_")},
                    "label": card.label,
                    "prompt": state["prompt"],
                    "status": state["status"],
                    "video_id": state["video_id"] or None,
                    "path": str(card.path) if card.path else None,
                    "saved_at": card.cached.saved_at if card.cached else None,
                }
            )
        return rows

    def to_pandas(self) -> Any:
        """The records as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas (or use .records())") from None
        return pd.DataFrame(self.records())

    def export(self, path: str | Path) -> Path:
        """A contact sheet: ``.html`` (thumbnails inline, relative links to the MP4s) or ``.zip`` (page + videos)."""
        return contact_sheet(self.title, self.items, Path(path), local=self.local)

    # ----- messages -----------------------------------------------------------------------------------------
    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        index = content.get("index")
        card = self.items[index] if isinstance(index, int) and 0 <= index < len(self.items) else None
        if content.get("type") == "cancel-all":
            self.cancel_all()
        elif content.get("type") == "open" and isinstance(index, int):
            self.open_player(index)
        elif content.get("type") == "poster":  # every request is answered: the front end never waits in vain
            poster = poster_jpeg(card.thumbnail, CARD_POSTER_WIDTH) if card is not None else b""
            if poster:
                self.send({"type": "poster", "index": index}, [poster])
            else:
                self.send({"type": "poster-error", "index": index, "message": "no poster for this video"})
        elif content.get("type") == "video":
            send_file(self, card.path if card is not None else None, {"index": index})
