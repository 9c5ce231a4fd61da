"""What the server knows of a video job (:class:`JobRecord`) and how a job looks at one instant (:class:`VideoState`).

Plain data with no imports beyond the standard library: the store keeps these, the engines read them, the
dialects write them as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["generate", "remix", "edit", "extend"]
Status = Literal["queued", "in_progress", "completed", "failed"]
ASSETS: dict[str, tuple[str, str]] = {
    "video": ("video.mp4", "video/mp4"),
    "thumbnail": ("thumbnail.webp", "image/webp"),
    "spritesheet": ("spritesheet.jpg", "image/jpeg"),
}
"""A finished job's files: variant -> (file name in the job's directory, media type)."""


@dataclass
class JobRecord:
    """What the server knows of one video job; persisted as ``job.json``.

    The request comes first; then the engine's part, filled in by ``Engine.admit`` (the synthetic engine's
    simulated schedule and moderation verdict); then the files, set by the store when the engine reports them
    made (or failed).
    """

    id: str
    kind: Kind
    model: str
    prompt: str
    width: int
    height: int
    seconds: float
    fps: int
    seed: int
    created_at: float
    scene_prompt: str
    segment_seconds: float | None = None  # an extension's added seconds (``seconds`` is the whole clip)
    remixed_from: str | None = None
    source_id: str | None = None
    has_image: bool = False
    has_source: bool = False
    metadata: dict[str, Any] | None = None
    characters: list[str] = field(default_factory=list)
    gen_params: dict[str, Any] | None = None  # an engine dialect's open-model fields (steps, guidance, ...)
    # the engine's part
    queue_seconds: float = 0.0
    run_seconds: float = 0.0
    blocked_word: str | None = None
    # the files
    render_done_at: float | None = None
    render_error: str | None = None
    etags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoState:
    """A job as seen at one instant: what a status response reports besides the job's own fields."""

    job: JobRecord
    status: Status
    progress: int
    completed_at: float | None
    expires_at: float | None
    expired: bool
    error: Mapping[str, str] | None
    remaining: float
