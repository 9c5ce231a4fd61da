"""What to render and what comes back: `RenderSpec`, `RenderResult`, and the two errors a render can end in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


class RenderError(Exception):
    """A source video or image cannot be used; the message says why and what to do."""


class RenderCancelled(Exception):
    """The render was cancelled through the `cancelled` callback."""


@dataclass(frozen=True)
class RenderSpec:
    """What to render.

    `prompt` is shown on the frames and drives palette, scene details and tone.  `seconds` is the clip
    length (for ``mode="extend"`` the TOTAL length).  ``mode="remix"`` takes the scene (shapes, motion,
    layout) from `scene_prompt` and palette/text/tone from `prompt`; ``mode="extend"`` also continues the
    scene of `scene_prompt` when given.  `image` (exactly width x height) turns generate/remix into a slow
    pan/zoom over the image; `source` is the MP4 to edit or extend.
    """

    prompt: str
    width: int
    height: int
    seconds: float
    fps: int = 24
    seed: int = 0
    mode: Literal["generate", "remix", "edit", "extend"] = "generate"
    scene_prompt: str | None = None
    image: Path | None = None
    source: Path | None = None


@dataclass(frozen=True)
class RenderResult:
    """Paths of the finished files plus the clip's frame count and duration (seconds)."""

    video: Path
    thumbnail: Path
    spritesheet: Path
    frames: int
    duration: float
