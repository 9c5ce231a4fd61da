"""A playground's takes strip: the gallery (live cards, muted looping previews, compare in sync, export) with a
star and a note on each card, its ETA while it runs, newest first, and a player that can extend as well as remix.

``Take`` is a gallery ``Card`` holding its session record; ``Takes`` is a ``Gallery`` whose star/note messages
change those records and tell the playground (which saves the session).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets
import traitlets

from sora_nb.jobs import Job, attach
from sora_nb.widgets.gallery import Card, Gallery
from sora_nb.widgets.job import VideoJob
from sora_nb.widgets.session import TakeRecord

MAX_NOTE_CHARS = 2000


@dataclass
class Take(Card):
    """One take: a gallery card with its session record (star, note, video ID, cost)."""

    record: TakeRecord = field(default_factory=lambda: TakeRecord(request={}))

    @property
    def starred(self) -> bool:
        """Whether the take is starred."""
        return self.record.starred

    @property
    def note(self) -> str:
        """The take's note."""
        return self.record.note

    def state(self) -> dict[str, Any]:
        """The gallery card's state, with the star, the note and the ETA (seconds; -1 unknown or done)."""
        job = self.job
        eta = job.eta if job is not None and not job.done and job.eta is not None else -1.0
        return {**super().state(), "starred": self.record.starred, "note": self.record.note, "eta": round(eta, 1)}


class Takes(Gallery):
    """The strip of a playground's takes (a Gallery: compare, open, export work as there)."""

    notes = traitlets.Bool(True, help="Cards have a star and a note.").tag(sync=True)
    newest_first = traitlets.Bool(True, help="The newest card comes first.").tag(sync=True)

    def __init__(
        self,
        *,
        local: bool,
        on_change: Callable[[], None],
        on_extend: Callable[[Take, str, int], None],
        extend_seconds: tuple[int, ...] = (4, 8),
    ) -> None:
        """An empty strip; ``on_change`` runs when a star or note changes, ``on_extend(take, prompt, seconds)``
        when the opened player's Extend is pressed."""
        self._on_change = on_change
        self._on_extend = on_extend
        self._extend_seconds = extend_seconds
        super().__init__("Takes", [], local=local, autoplay=True)

    def add(self, take: Take, estimated_usd: float = 0.0) -> None:
        """Show ``take`` (its ``start`` gives its job) and start it; ``estimated_usd`` is what it should cost."""
        with self._lock:
            self.items.append(take)
        self.estimated_usd = round(self.estimated_usd + estimated_usd, 4)
        self._start_more()
        self._push()

    @property
    def takes(self) -> list[Take]:
        """The takes, oldest first."""
        return [item for item in self.items if isinstance(item, Take)]

    def mark(self, index: int, *, starred: bool | None = None, note: str | None = None) -> None:
        """Star or unstar take ``index`` (oldest is 0), or set its note; the session is saved."""
        record = self.takes[index].record
        if starred is not None:
            record.starred = starred
        if note is not None:
            record.note = note[:MAX_NOTE_CHARS]
        self._push()
        self._on_change()

    def open_player(self, index: int) -> VideoJob | None:
        """The full player of take ``index`` (remix box included) with an Extend row, shown below the strip."""
        widget = super().open_player(index)
        if widget is not None:
            self._show_below(self.extend_row(self.takes[index]))
        return widget

    def extend_row(self, take: Take) -> ipywidgets.HBox:
        """What happens next, by how many seconds, and Extend: a new take continuing ``take``."""
        text = ipywidgets.Text(placeholder="What happens next", description="Extend:")
        seconds = ipywidgets.Dropdown(options=list(self._extend_seconds), description="by (s)")
        go = ipywidgets.Button(description="Extend", tooltip="Extend this take by that many seconds (a new take)")

        def extend(_button: Any) -> None:
            if text.value.strip():
                self._on_extend(take, text.value, int(seconds.value))

        go.on_click(extend)
        return ipywidgets.HBox([text, seconds, go])

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        index = content.get("index") if isinstance(content, dict) else None
        if kind in ("star", "note") and isinstance(index, int) and 0 <= index < len(self.takes):
            if kind == "star":
                self.mark(index, starred=bool(content.get("starred")))
            elif isinstance(content.get("note"), str):
                self.mark(index, note=content["note"])
            return
        super()._on_message(widget, content, buffers)


def restored_job(record: TakeRecord) -> Job | None:
    """The job of a saved take: attached by its video ID (free: the cache or the server has it), else None."""
    return attach(record.video_id) if record.video_id else None
