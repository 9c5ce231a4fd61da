"""What each mode draws and plays: generate and remix draw a scene (or pan over an image), edit
restyles the source video, extend plays the source and continues it with a scene.  The encoder asks the
plan for one frame at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sora_nb.server.engines.synthetic.audio import AUDIO_RATE, tone
from sora_nb.server.engines.synthetic.color import F32, EditLook, Planes, palette
from sora_nb.server.engines.synthetic.scene import KenBurns, SceneDrawer
from sora_nb.server.engines.synthetic.sources import SourceReader, file_digest
from sora_nb.server.engines.synthetic.spec import RenderError, RenderSpec
from sora_nb.server.engines.synthetic.text import Overlay

CAPTION_PREFIX = {"generate": "", "remix": "REMIX: ", "edit": "EDIT: ", "extend": "EXTEND: "}


@dataclass
class Plan:
    """Per-frame drawing callback plus the soundtrack for a render."""

    draw: Callable[[int, Planes], None]
    audio: F32
    closers: list[Callable[[], None]]


def make_plan(spec: RenderSpec, n: int) -> Plan:
    w, h, fps = spec.width, spec.height, spec.fps
    pal = palette(spec.prompt)
    caption = CAPTION_PREFIX[spec.mode] + spec.prompt
    n_audio = round(n / fps * AUDIO_RATE)

    if spec.mode == "edit":
        assert spec.source is not None
        reader = SourceReader(spec.source, w, h)
        look = EditLook(spec.prompt)
        overlay = Overlay(caption, w, h, pal.accent, caption_top=True)
        audio = tone(spec.prompt, ("source", file_digest(spec.source)), n_audio)

        def draw_edit(i: int, planes: Planes) -> None:
            look.apply(reader.frame_at(i / fps), planes)
            overlay.apply(planes, (i + 1) / n)

        return Plan(draw_edit, audio, [reader.close])

    if spec.mode == "extend":
        assert spec.source is not None
        reader = SourceReader(spec.source, w, h)
        try:
            n_src = round(reader.duration * fps)
            if n_src >= n:
                raise RenderError(
                    f"extend: the requested total length ({n / fps:.2f} s) must be longer than the source "
                    f"video ({reader.duration:.2f} s); ask for more seconds"
                )
            scene = SceneDrawer(spec.scene_prompt or spec.prompt, spec.prompt, spec.seed, w, h)
            overlay = Overlay(caption, w, h, pal.accent, caption_top=False)
            n_src_audio = round(n_src / fps * AUDIO_RATE)
            # each part fades in/out on its own, so plain concatenation has no click at the seam
            audio = np.concatenate(
                [
                    tone("", ("source", file_digest(spec.source)), n_src_audio),
                    tone(spec.prompt, spec.prompt, n_audio - n_src_audio),
                ]
            )
        except BaseException:
            reader.close()
            raise
        fade = max(1, round(0.5 * fps))
        last: list[Planes] = []

        def draw_extend(i: int, planes: Planes) -> None:
            if i < n_src:
                src = reader.frame_at(i / fps)
                for dst, s in zip(planes, src, strict=True):
                    np.copyto(dst, s)
                if i == n_src - 1:
                    last.append(tuple(p.copy() for p in planes))
                return
            scene.draw(i / fps, planes)
            j = i - n_src
            if j < fade and last:
                a = round(256 * (j + 1) / (fade + 1))
                for dst, old in zip(planes, last[0], strict=True):
                    tmp = np.multiply(dst, a, dtype=np.uint16)
                    tmp += np.multiply(old, 256 - a, dtype=np.uint16)
                    tmp >>= 8
                    dst[...] = tmp
            overlay.apply(planes, (i + 1) / n)

        return Plan(draw_extend, audio, [reader.close])

    overlay = Overlay(caption, w, h, pal.accent, caption_top=False)
    audio = tone(spec.prompt, spec.prompt, n_audio)
    drawer: SceneDrawer | KenBurns
    if spec.image is not None:
        drawer = KenBurns(spec.image, w, h, spec.scene_prompt or spec.prompt, spec.seed, n / fps)
    else:
        scene_prompt = spec.scene_prompt if spec.mode == "remix" and spec.scene_prompt else spec.prompt
        drawer = SceneDrawer(scene_prompt, spec.prompt, spec.seed, w, h)

    def draw_scene(i: int, planes: Planes) -> None:
        drawer.draw(i / fps, planes)
        overlay.apply(planes, (i + 1) / n)

    return Plan(draw_scene, audio, [])
