"""The synthetic engine: deterministic, visibly synthetic MP4 clips for the local preview server.

Every clip shows the prompt, a "LOCAL PREVIEW" badge, a moving scene whose palette, layout and tone come
from hashes of the prompt (and seed), and a progress line.  Frames are synthesised directly as BT.601
limited-range YUV 4:2:0 planes with numpy (no per-frame RGB conversion), encoded with libx264 (ultrafast)
plus AAC, and written with the moov atom first.  Same spec -> byte-identical files.

Where things are: `spec` (what to render, what comes back, errors), `plan` (what each mode draws and plays),
`scene` (the moving backdrop and discs, or a pan/zoom over an image), `text` (badge, caption, progress line),
`patches` (blending those into the planes), `color` (YUV planes, palettes, the edit look), `sources` (input
images and videos), `audio` (the tone), `rng` (hash-derived numbers) and `encode` (`render()` itself).
`engine` puts `render()` behind the server's Engine protocol (`SyntheticEngine`: a thread pool, copies of
identical renders) on the simulated schedule of `schedule`.
"""

from __future__ import annotations

from sora_nb.server.engines.synthetic.encode import render
from sora_nb.server.engines.synthetic.engine import SyntheticEngine
from sora_nb.server.engines.synthetic.sources import VideoInfo, probe_video
from sora_nb.server.engines.synthetic.spec import RenderCancelled, RenderError, RenderResult, RenderSpec

__all__ = [
    "RenderCancelled",
    "RenderError",
    "RenderResult",
    "RenderSpec",
    "SyntheticEngine",
    "VideoInfo",
    "probe_video",
    "render",
]
