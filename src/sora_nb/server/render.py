"""Renderer of the local preview server: deterministic, visibly synthetic MP4 clips.

Every clip shows the prompt, a "LOCAL PREVIEW" badge, a moving scene whose palette, layout and tone come
from hashes of the prompt (and seed), and a progress line.  Frames are synthesised directly as BT.601
limited-range YUV 4:2:0 planes with numpy (no per-frame RGB conversion), encoded with libx264 (ultrafast)
plus AAC, and written with the moov atom first.  Same spec -> byte-identical files.
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

__all__ = [
    "RenderCancelled",
    "RenderError",
    "RenderResult",
    "RenderSpec",
    "VideoInfo",
    "probe_video",
    "render",
]


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


@dataclass(frozen=True)
class VideoInfo:
    """Basic facts about a video file (see `probe_video`)."""

    width: int
    height: int
    duration: float
    fps: float
    has_audio: bool


# --------------------------------------------------------------------------------------------------------
# constants

_AUDIO_RATE = 48_000
_AUDIO_BIT_RATE = 64_000  # mono
# Fixed (not "auto") so the bytes do not depend on the machine's core count; x264 output is deterministic
# for a given thread count.  3 frame threads keep both cores of a 2-core machine busy.
_X264_THREADS = 3
_X264_PRESET = "ultrafast"
_X264_CRF = "23"
_CANCEL_CHECK_EVERY = 4
_SPRITE_COLS = 4
_SPRITE_ROWS = 4
_SPRITE_CELL_WIDTH = 256
_MIN_SIZE = 64
_MAX_SIZE = 4096
_AVCOL_SMPTE170M = 6  # BT.601 (525) matrix / primaries / transfer tags
_AVCOL_RANGE_MPEG = 1  # limited ("TV") range
_CAPTION_PREFIX = {"generate": "", "remix": "REMIX: ", "edit": "EDIT: ", "extend": "EXTEND: "}

_U8 = NDArray[np.uint8]
_U16 = NDArray[np.uint16]
_F32 = NDArray[np.float32]
_F64 = NDArray[np.float64]
_Planes = tuple[_U8, _U8, _U8]
_RGB = tuple[float, float, float]

# BT.601 limited range, RGB in 0..255
_Y_COEF = np.array([0.256788, 0.504129, 0.097906], dtype=np.float32)
_U_COEF = np.array([-0.148223, -0.290993, 0.439216], dtype=np.float32)
_V_COEF = np.array([0.439216, -0.367788, -0.071427], dtype=np.float32)


# --------------------------------------------------------------------------------------------------------
# deterministic hashing


class _Rng:
    """A deterministic stream of numbers derived from a hash of `parts` (stable across numpy versions)."""

    def __init__(self, *parts: object) -> None:
        h = hashlib.blake2b(digest_size=32)
        for part in parts:
            h.update(repr(part).encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        self._key = h.digest()
        self._counter = 0

    def unit(self) -> float:
        digest = hashlib.blake2b(self._counter.to_bytes(8, "little"), key=self._key, digest_size=8).digest()
        self._counter += 1
        return int.from_bytes(digest, "little") / 2.0**64

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.unit()

    def integer(self, n: int) -> int:
        return min(n - 1, int(self.unit() * n))

    def sign(self) -> float:
        return 1.0 if self.unit() < 0.5 else -1.0


def _hsv(h: float, s: float, v: float) -> _RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r * 255.0, g * 255.0, b * 255.0)


def _yuv_of(rgb: _RGB) -> tuple[int, int, int]:
    arr = np.array(rgb, dtype=np.float32)
    y = 16.0 + float(arr @ _Y_COEF)
    u = 128.0 + float(arr @ _U_COEF)
    v = 128.0 + float(arr @ _V_COEF)
    return (round(min(max(y, 16.0), 235.0)), round(u), round(v))


def _rgb_to_yuv_planes(rgb: _F32) -> tuple[_F32, _F32, _F32]:
    """(H, W, 3) float RGB -> Y (H, W) and U, V (H/2, W/2) as floats (H, W even)."""
    h, w = rgb.shape[0], rgb.shape[1]
    y = rgb @ _Y_COEF + np.float32(16.0)
    small = rgb.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3), dtype=np.float32)
    u = small @ _U_COEF + np.float32(128.0)
    v = small @ _V_COEF + np.float32(128.0)
    return y, u, v


def _to_u8(arr: _F32) -> _U8:
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------
# palette and scene


@dataclass(frozen=True)
class _Palette:
    sky_top: _RGB
    sky_horizon: _RGB
    cloud: _RGB
    hills: _RGB
    ground_far: _RGB
    ground_near: _RGB
    discs: tuple[_RGB, ...]
    accent: _RGB


def _palette(prompt: str) -> _Palette:
    # Hues vary freely with the prompt; brightness structure stays similar so text and scene stay legible.
    r = _Rng("palette", prompt)
    h = r.unit()
    ground_h = h + r.uniform(0.25, 0.45)
    ground_s = r.uniform(0.35, 0.6)
    return _Palette(
        sky_top=_hsv(h, r.uniform(0.5, 0.75), r.uniform(0.28, 0.38)),
        sky_horizon=_hsv(h + r.uniform(0.06, 0.16), r.uniform(0.3, 0.5), r.uniform(0.86, 0.95)),
        cloud=_hsv(h + 0.1, 0.08, 1.0),
        hills=_hsv(h + r.uniform(0.45, 0.6), r.uniform(0.25, 0.45), r.uniform(0.42, 0.5)),
        ground_far=_hsv(ground_h, ground_s, r.uniform(0.5, 0.6)),
        ground_near=_hsv(ground_h + 0.03, ground_s + 0.1, r.uniform(0.18, 0.24)),
        discs=tuple(_hsv(h + 0.17 + k * 0.618034, r.uniform(0.5, 0.8), r.uniform(0.9, 1.0)) for k in range(8)),
        accent=_hsv(h + 0.5, 0.75, 1.0),
    )


@dataclass(frozen=True)
class _Disc:
    radius: float  # fraction of min(width, height)
    cx: float  # centre x, fraction of width
    ax: float
    fx: float  # Hz
    px: float
    cy: float  # centre y, fraction of height
    ay: float
    fy: float
    py: float
    colour: int
    opacity: float


@dataclass(frozen=True)
class _Scene:
    horizon: float  # fraction of height
    hills: tuple[tuple[int, float, float], ...]  # (cycles per width, amplitude (fraction of H), phase)
    ground: tuple[tuple[int, float, float], ...]
    clouds: tuple[tuple[float, float, float, float, float], ...]  # x, y, half-width, half-height, alpha
    stripes: int
    scroll: float  # fraction of width per second
    discs: tuple[_Disc, ...]


def _scene(scene_prompt: str, seed: int) -> _Scene:
    r = _Rng("scene", scene_prompt, seed)
    horizon = r.uniform(0.58, 0.72)
    hills = tuple((c, r.uniform(0.015, 0.06), r.uniform(0.0, 2 * math.pi)) for c in (1, 2, 3, 5))
    ground = tuple((c, r.uniform(0.002, 0.008), r.uniform(0.0, 2 * math.pi)) for c in (2, 7))
    clouds = tuple(
        (r.unit(), r.uniform(0.06, 0.4), r.uniform(0.08, 0.2), r.uniform(0.025, 0.05), r.uniform(0.25, 0.5))
        for _ in range(3 + r.integer(4))
    )
    discs = []
    for k in range(5 + r.integer(3)):
        discs.append(
            _Disc(
                radius=r.uniform(0.05, 0.13),
                cx=0.5,
                ax=r.uniform(0.2, 0.42),
                fx=r.uniform(0.05, 0.14) * r.sign(),
                px=r.uniform(0.0, 2 * math.pi),
                cy=r.uniform(0.25, 0.45),
                ay=r.uniform(0.08, 0.2),
                fy=r.uniform(0.07, 0.2) * r.sign(),
                py=r.uniform(0.0, 2 * math.pi),
                colour=k,
                opacity=r.uniform(0.75, 0.95),
            )
        )
    discs.sort(key=lambda d: -d.radius)  # big ones behind
    return _Scene(
        horizon=horizon,
        hills=hills,
        ground=ground,
        clouds=clouds,
        stripes=4 + r.integer(6),
        scroll=r.uniform(0.04, 0.09),
        discs=tuple(discs),
    )


def _lerp_rgb(a: _RGB, b: _RGB, t: _F32) -> _F32:
    """Interpolate colours a -> b by t (any shape); returns t.shape + (3,)."""
    ca = np.array(a, dtype=np.float32)
    cb = np.array(b, dtype=np.float32)
    tt = t[..., None]
    out: _F32 = ca + (cb - ca) * tt
    return out


def _paint(scene: _Scene, pal: _Palette, width: int, height: int, step: int, coef: _F32) -> _F32:
    """Sample the backdrop every `step` px (pixel centres) in the colour space `coef` (3 x k, linear).

    Works directly in Y-16 / U-128 / V-128 (linear in RGB), so luma is painted at full resolution and
    chroma at quarter resolution without any RGB image or 2x2 averaging.
    """
    w, h = width, height
    x = (np.arange(0, w, step, dtype=np.float32) + np.float32(step / 2))[None, :]
    y = (np.arange(0, h, step, dtype=np.float32) + np.float32(step / 2))[:, None]
    hor = scene.horizon * h
    two_pi = np.float32(2 * math.pi)

    def col(rgb: _RGB) -> _F32:
        out: _F32 = np.array(rgb, dtype=np.float32) @ coef
        return out

    def lerp(a: _RGB, b: _RGB, t: _F32) -> _F32:
        ca, cb = col(a), col(b)
        out: _F32 = ca + (cb - ca) * t[..., None]
        return out

    sky_t = (np.clip(y[:, 0] / np.float32(hor), 0.0, 1.0) ** np.float32(1.6)).astype(np.float32)
    img = np.empty((y.shape[0], x.shape[1], coef.shape[1]), dtype=np.float32)
    img[:] = lerp(pal.sky_top, pal.sky_horizon, sky_t)[:, None, :]

    cloud = col(pal.cloud)
    for cx, cy, hw, hh, alpha in scene.clouds:
        cyp, hwp, hhp = cy * h, hw * w, hh * h
        rows = np.nonzero(np.abs(y[:, 0] - cyp) < 3 * hhp)[0]
        if rows.size == 0:
            continue
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        dx = ((x - np.float32(cx * w - w / 2)) % np.float32(w)) - np.float32(w / 2)
        dy = y[r0:r1] - np.float32(cyp)
        a = np.exp(-((dx / np.float32(hwp)) ** 2 + (dy / np.float32(hhp)) ** 2)) * np.float32(alpha)
        band = img[r0:r1]
        band += (cloud - band) * a[..., None]

    ridge = np.full((1, x.shape[1]), hor, dtype=np.float32)
    for cycles, amp, phase in scene.hills:
        ridge -= np.float32(amp * h) * (0.5 + 0.5 * np.sin(two_pi * cycles * x / np.float32(w) + np.float32(phase)))
    r0 = int(np.searchsorted(y[:, 0], float(ridge.min()) - step))
    yy = y[r0:]
    cov = np.clip((yy - ridge) / np.float32(step) + np.float32(0.5), 0.0, 1.0)
    haze = np.clip((yy - ridge) / np.float32(max(1.0, hor - float(ridge.min()))), 0.0, 1.0)
    hill = lerp(pal.hills, pal.sky_horizon, np.float32(0.35) * (1 - haze))
    band = img[r0:]
    band += (hill - band) * cov[..., None]

    gline = np.full((1, x.shape[1]), hor, dtype=np.float32)
    for cycles, amp, phase in scene.ground:
        gline += np.float32(amp * h) * np.sin(two_pi * cycles * x / np.float32(w) + np.float32(phase))
    r0 = int(np.searchsorted(y[:, 0], float(gline.min()) - step))
    yy = y[r0:]
    cov = np.clip((yy - gline) / np.float32(step) + np.float32(0.5), 0.0, 1.0)
    depth = np.clip((yy - np.float32(hor)) / np.float32(max(1.0, h - hor)), 0.0, 1.0)
    ground = lerp(pal.ground_far, pal.ground_near, depth ** np.float32(0.8))
    stripes = 1 + np.float32(0.12) * np.sin(two_pi * scene.stripes * x / np.float32(w) + 10 * np.sqrt(depth))
    ground = ground * stripes[..., None]
    band = img[r0:]
    band += (ground - band) * cov[..., None]
    return img


def _background(scene: _Scene, pal: _Palette, width: int, height: int) -> _Planes:
    """One horizontal period (width px) of the scrolling backdrop, returned twice side by side."""
    luma = _paint(scene, pal, width, height, 1, _Y_COEF[:, None])
    chroma = _paint(scene, pal, width, height, 2, np.stack([_U_COEF, _V_COEF], axis=1))
    planes = (luma[..., 0] + np.float32(16), chroma[..., 0] + np.float32(128), chroma[..., 1] + np.float32(128))
    y8, u8, v8 = (np.concatenate([_to_u8(p)] * 2, axis=1) for p in planes)
    return y8, u8, v8


# --------------------------------------------------------------------------------------------------------
# premultiplied patches blended into the YUV planes


@dataclass(frozen=True)
class _Patch:
    """An even-aligned RGBA patch pre-converted to premultiplied YUV (alpha in 0..256)."""

    x: int
    y: int
    inv_y: _U16
    pre_y: _U16
    inv_c: _U16
    pre_u: _U16
    pre_v: _U16


def _premultiply(value: _F32, alpha: _F32) -> tuple[_U16, _U16]:
    a256 = np.rint(alpha * 256.0)
    pre = np.minimum(np.rint(np.clip(value, 0.0, 255.0) * alpha * 256.0), a256 * 255.0)
    return (256.0 - a256).astype(np.uint16), pre.astype(np.uint16)


def _patch_from_layers(x: int, y: int, rgb: _F32, alpha: _F32) -> _Patch:
    """Build a patch from float RGB (h, w, 3) and alpha in 0..1 (h, w); x, y, h, w even."""
    h, w = alpha.shape
    yf = rgb @ _Y_COEF + np.float32(16.0)
    uf = rgb @ _U_COEF + np.float32(128.0)
    vf = rgb @ _V_COEF + np.float32(128.0)
    inv_y, pre_y = _premultiply(yf, alpha)

    def quarter(a: _F32) -> _F32:
        out: _F32 = a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float32)
        return out

    a_c = quarter(alpha)
    safe = np.maximum(a_c, np.float32(1e-6))
    inv_c, pre_u = _premultiply(quarter(uf * alpha) / safe, a_c)
    _, pre_v = _premultiply(quarter(vf * alpha) / safe, a_c)
    return _Patch(x, y, inv_y, pre_y, inv_c, pre_u, pre_v)


def _patch_from_image(img: Image.Image, x: int, y: int) -> _Patch:
    """RGBA image placed at (x, y) (both even) -> patch; pads to even size."""
    w, h = img.size
    if w % 2 or h % 2:
        padded = Image.new("RGBA", (w + w % 2, h + h % 2), (0, 0, 0, 0))
        padded.paste(img, (0, 0))
        img = padded
    arr = np.asarray(img, dtype=np.float32)
    return _patch_from_layers(x, y, arr[..., :3], arr[..., 3] / np.float32(255.0))


def _blend(plane: _U8, x0: int, y0: int, inv: _U16, pre: _U16) -> None:
    """plane[y0:, x0:] = (plane * inv + pre) >> 8 over the patch, clipped to the plane."""
    ph, pw = inv.shape
    hh, ww = plane.shape
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + pw, ww), min(y0 + ph, hh)
    if xa >= xb or ya >= yb:
        return
    dst = plane[ya:yb, xa:xb]
    tmp = np.multiply(dst, inv[ya - y0 : yb - y0, xa - x0 : xb - x0], dtype=np.uint16)
    tmp += pre[ya - y0 : yb - y0, xa - x0 : xb - x0]
    tmp >>= 8
    dst[...] = tmp


def _apply_patch(planes: _Planes, p: _Patch) -> None:
    y, u, v = planes
    _blend(y, p.x, p.y, p.inv_y, p.pre_y)
    _blend(u, p.x // 2, p.y // 2, p.inv_c, p.pre_u)
    _blend(v, p.x // 2, p.y // 2, p.inv_c, p.pre_v)


def _disc_patch(radius: float, colour: _RGB, opacity: float) -> _Patch:
    """A soft, slightly shaded disc centred in an even-sized patch (position filled in per frame)."""
    size = 2 * (math.ceil(radius) + 2)
    c = size / 2.0
    coords = np.arange(size, dtype=np.float32) + np.float32(0.5)
    xx, yy = coords[None, :], coords[:, None]
    d = np.sqrt((xx - c) ** 2 + (yy - c) ** 2)
    soft = max(1.0, 0.35 * radius)
    e = np.clip((radius - d) / soft, 0.0, 1.0)
    alpha = (opacity * e * e * (3.0 - 2.0 * e)).astype(np.float32)
    hd = np.sqrt((xx - c + 0.35 * radius) ** 2 + (yy - c + 0.35 * radius) ** 2)
    shine = (0.45 * np.clip(1.0 - hd / radius, 0.0, 1.0) ** 2).astype(np.float32)
    rgb = _lerp_rgb(colour, (255.0, 255.0, 255.0), shine)
    return _patch_from_layers(0, 0, rgb, alpha)


# --------------------------------------------------------------------------------------------------------
# text overlay (rendered once per clip)

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font(size: int) -> _Font:
    return ImageFont.load_default(size=size)


def _fit(text: str, font: _Font, max_w: float) -> int:
    """Length of the longest prefix of text that fits into max_w (at least 1)."""
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid]) <= max_w:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _wrap(text: str, font: _Font, max_w: float, max_lines: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in text.split():
        while font.getlength(word) > max_w:
            if cur:
                lines.append(cur)
                cur = ""
            cut = _fit(word, font, max_w)
            lines.append(word[:cut])
            word = word[cut:]
        cand = f"{cur} {word}" if cur else word
        if font.getlength(cand) <= max_w:
            cur = cand
        else:
            lines.append(cur)
            cur = word
        if len(lines) > max_lines:
            break
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and font.getlength(last + "...") > max_w:
            last = last[:-1]
        lines[-1] = last.rstrip() + "..."
    return lines


def _even(v: float) -> int:
    return int(v) // 2 * 2


def _badge(width: int, height: int) -> tuple[Image.Image, int, int]:
    unit = min(width, height)
    font = _font(max(8, round(unit * 0.04)))
    margin = _even(max(4, round(unit * 0.028)))
    text = "LOCAL PREVIEW"
    left, top, right, bottom = font.getbbox(text)
    pad = max(3, round(unit * 0.012))
    dot = max(4, round((bottom - top) * 0.75))
    bw = int(right - left) + 3 * pad + dot
    bh = int(bottom - top) + 2 * pad
    img = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    border = max(1, round(unit * 0.003))
    draw.rounded_rectangle(
        (0, 0, bw - 1, bh - 1),
        radius=max(2, bh // 5),
        fill=(255, 214, 10, 255),
        outline=(0, 0, 0, 255),
        width=border,
    )
    dy = (bh - dot) // 2
    draw.ellipse((pad, dy, pad + dot, dy + dot), fill=(220, 20, 30, 255))
    draw.text((2 * pad + dot - left, pad - top), text, font=font, fill=(10, 10, 10, 255))
    return img, margin, margin


def _caption(text: str, width: int, height: int, top: int | None) -> tuple[Image.Image, int, int] | None:
    """Light text with a soft shadow on a dark translucent box, centred; bottom unless `top` is given."""
    text = " ".join(text.split())[:600]
    if not text:
        return None
    unit = min(width, height)
    font = _font(max(9, round(unit * 0.045)))
    margin = max(4, round(unit * 0.03))
    pad = max(3, round(unit * 0.018))
    ascent, descent = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (unit // 20, 0)
    line_h = round((ascent + descent) * 1.12)
    max_lines = max(1, min(5, int(height * 0.3 / max(1, line_h))))
    lines = _wrap(text, font, width - 2 * margin - 2 * pad, max_lines)
    text_w = max(font.getlength(line) for line in lines)
    bw = math.ceil(text_w) + 2 * pad
    bh = line_h * (len(lines) - 1) + ascent + descent + 2 * pad
    shadow = max(1, round(unit * 0.003))
    mask = Image.new("L", (bw, bh), 0)
    draw = ImageDraw.Draw(mask)
    for k, line in enumerate(lines):
        lw = font.getlength(line)
        draw.text(((bw - lw) / 2, pad + k * line_h), line, font=font, fill=255)
    shadow_mask = Image.new("L", (bw, bh), 0)
    shadow_mask.paste(mask, (shadow, shadow))
    shadow_mask = shadow_mask.filter(ImageFilter.GaussianBlur(max(1, shadow)))
    img = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    ImageDraw.Draw(img).rounded_rectangle((0, 0, bw - 1, bh - 1), radius=max(2, pad), fill=(8, 8, 14, 150))
    img.paste(Image.new("RGBA", (bw, bh), (0, 0, 0, 255)), (0, 0), shadow_mask.point(lambda p: p * 9 // 10))
    img.paste(Image.new("RGBA", (bw, bh), (250, 250, 246, 255)), (0, 0), mask)
    x = _even((width - bw) / 2)
    y = _even(top) if top is not None else _even(height - bh - margin)
    return img, max(0, x), max(0, y)


class _Overlay:
    """Badge + caption patches and the progress line, applied to every frame of a segment."""

    def __init__(self, caption: str, width: int, height: int, accent: _RGB, caption_top: bool) -> None:
        badge, bx, by = _badge(width, height)
        self.patches = [_patch_from_image(badge, bx, by)]
        self.bar_h = max(2, _even(round(height * 0.007)))
        top = by + badge.size[1] + by // 2 if caption_top else None
        cap = _caption(caption, width, height - self.bar_h, top)
        if cap is not None:
            self.patches.append(_patch_from_image(*cap))
        self.accent = _yuv_of(accent)
        self.width, self.height = width, height

    def apply(self, planes: _Planes, progress: float) -> None:
        y, u, v = planes
        for p in self.patches:
            _apply_patch(planes, p)
        fill = _even(round(self.width * min(max(progress, 0.0), 1.0)))
        r0 = self.height - self.bar_h
        ay, au, av_ = self.accent
        y[r0:, :fill] = ay
        y[r0:, fill:] = 28
        u[r0 // 2 :, : fill // 2] = au
        u[r0 // 2 :, fill // 2 :] = 128
        v[r0 // 2 :, : fill // 2] = av_
        v[r0 // 2 :, fill // 2 :] = 128


# --------------------------------------------------------------------------------------------------------
# frame producers


class _SceneDrawer:
    """Sky/hills/ground backdrop scrolling sideways plus soft discs on smooth paths."""

    def __init__(self, scene_prompt: str, palette_prompt: str, seed: int, width: int, height: int) -> None:
        self.scene = _scene(scene_prompt, seed)
        pal = _palette(palette_prompt)
        self.width, self.height = width, height
        self.bg = _background(self.scene, pal, width, height)
        unit = min(width, height)
        self.discs = [
            (d, _disc_patch(d.radius * unit, pal.discs[d.colour % len(pal.discs)], d.opacity)) for d in self.scene.discs
        ]

    def draw(self, t: float, planes: _Planes) -> None:
        w, h = self.width, self.height
        off = _even(self.scene.scroll * w * t) % w
        by, bu, bv = self.bg
        y, u, v = planes
        np.copyto(y, by[:, off : off + w])
        np.copyto(u, bu[:, off // 2 : off // 2 + w // 2])
        np.copyto(v, bv[:, off // 2 : off // 2 + w // 2])
        two_pi = 2 * math.pi
        for d, patch in self.discs:
            size = patch.inv_y.shape[0]
            cx = w * (d.cx + d.ax * math.sin(two_pi * d.fx * t + d.px))
            cy = h * (d.cy + d.ay * math.sin(two_pi * d.fy * t + d.py))
            x0 = 2 * round((cx - size / 2) / 2)
            y0 = 2 * round((cy - size / 2) / 2)
            _blend(y, x0, y0, patch.inv_y, patch.pre_y)
            _blend(u, x0 // 2, y0 // 2, patch.inv_c, patch.pre_u)
            _blend(v, x0 // 2, y0 // 2, patch.inv_c, patch.pre_v)


class _KenBurns:
    """Slow zoom (1.0 -> ~1.15) and pan over a still image, resampled per frame by Pillow."""

    def __init__(self, path: Path, width: int, height: int, key: str, seed: int, seconds: float) -> None:
        img = _load_image(path, width, height)
        rgb = np.asarray(img, dtype=np.float32)
        yf, uf, vf = _rgb_to_yuv_planes(rgb)
        self.y_img = Image.fromarray(_to_u8(yf))
        self.u_img = Image.fromarray(_to_u8(uf))
        self.v_img = Image.fromarray(_to_u8(vf))
        r = _Rng("kenburns", key, seed)
        self.zoom = r.uniform(1.12, 1.2)
        self.dx = r.sign() * r.uniform(0.4, 1.0) * (width / 2) * (1 - 1 / self.zoom)
        self.dy = r.sign() * r.uniform(0.2, 0.8) * (height / 2) * (1 - 1 / self.zoom)
        self.width, self.height, self.seconds = width, height, max(seconds, 1e-6)

    def draw(self, t: float, planes: _Planes) -> None:
        p = min(max(t / self.seconds, 0.0), 1.0)
        e = p * p * (3 - 2 * p)
        w, h = self.width, self.height
        z = 1.0 + (self.zoom - 1.0) * e
        cx, cy = w / 2 + self.dx * e, h / 2 + self.dy * e
        hw, hh = w / (2 * z), h / (2 * z)
        box = (cx - hw, cy - hh, cx + hw, cy + hh)
        half = (box[0] / 2, box[1] / 2, box[2] / 2, box[3] / 2)
        bil = Image.Resampling.BILINEAR
        y, u, v = planes
        np.copyto(y, np.asarray(self.y_img.resize((w, h), bil, box=box)))
        np.copyto(u, np.asarray(self.u_img.resize((w // 2, h // 2), bil, box=half)))
        np.copyto(v, np.asarray(self.v_img.resize((w // 2, h // 2), bil, box=half)))


def _load_image(path: Path, width: int, height: int) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            img = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RenderError(f"the input image cannot be read ({_reason(exc)}); use a PNG, JPEG or WEBP file") from exc
    if img.size != (width, height):
        raise RenderError(
            f"the input image is {img.size[0]}x{img.size[1]} but the video is {width}x{height}; "
            f"resize or crop the image to exactly {width}x{height} (the requested size)"
        )
    return img


def _plane_views(frame: VideoFrame) -> _Planes:
    """numpy views (height, width) of the three planes of a yuv420p frame, ignoring line padding."""
    views: list[_U8] = []
    for plane in frame.planes[:3]:
        buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
        rows = buf[: plane.line_size * plane.height].reshape(plane.height, plane.line_size)
        views.append(rows[:, : plane.width])
    return views[0], views[1], views[2]


class _SourceReader:
    """Decodes a source video sequentially; `frame_at(t)` gives the frame shown at time t (W x H yuv420p)."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        self.width, self.height = width, height
        try:
            self._container = av.open(str(path), mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise RenderError(_not_a_video(path, exc)) from exc
        try:
            stream = _video_stream(self._container, path)
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or 24
            self._step = 1.0 / float(rate)
            if stream.duration is not None and stream.time_base is not None:
                self.duration = float(stream.duration * stream.time_base)
            elif self._container.duration is not None:
                self.duration = self._container.duration / 1_000_000
            else:
                self.duration = 0.0
            self._frames: Iterator[VideoFrame] = self._container.decode(stream)
            self._path = path
            self._last_t = -self._step
            first = self._read()
            if first is None:
                raise RenderError("the video contains no decodable frames; pass an MP4 file with H.264 video")
            self._t0 = first[0]
            self._cur = first
            self._next = self._read()
        except BaseException:
            self._container.close()
            raise

    def _read(self) -> tuple[float, VideoFrame, _Planes] | None:
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except (av.FFmpegError, ValueError) as exc:
            raise RenderError(_not_a_video(self._path, exc)) from exc
        if (frame.width, frame.height, frame.format.name) != (self.width, self.height, "yuv420p"):
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        t = frame.time if frame.time is not None else self._last_t + self._step
        self._last_t = t
        return t, frame, _plane_views(frame)

    def frame_at(self, t: float) -> _Planes:
        tol = 0.25 * self._step
        while self._next is not None and self._next[0] - self._t0 <= t + tol:
            self._cur = self._next
            self._next = self._read()
        return self._cur[2]

    def close(self) -> None:
        self._container.close()


def probe_video(path: Path) -> VideoInfo:
    """Size, duration, frame rate and audio presence of a video; RenderError if it cannot be decoded."""
    path = Path(path)
    try:
        with av.open(str(path), mode="r") as container:
            stream = _video_stream(container, path)
            first = next(iter(container.decode(stream)), None)
            if first is None:
                raise RenderError("the video contains no decodable frames; pass an MP4 file with H.264 video")
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            rate = stream.average_rate or stream.guessed_rate
            return VideoInfo(
                width=stream.codec_context.width or first.width,
                height=stream.codec_context.height or first.height,
                duration=duration,
                fps=float(rate) if rate else 0.0,
                has_audio=bool(container.streams.audio),
            )
    except RenderError:
        raise
    except (av.FFmpegError, OSError, ValueError, StopIteration) as exc:
        raise RenderError(_not_a_video(path, exc)) from exc


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise RenderError("the file is a still image, not a video; pass an MP4 file with H.264 video")
    if not container.streams.video:
        raise RenderError("the file has no video stream; pass an MP4 file with H.264 video")
    return container.streams.video[0]


def _reason(exc: BaseException) -> str:
    """A short cause for a user-facing message, without file paths (str(exc) of OS/FFmpeg errors has them)."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    return str(exc) if isinstance(exc, ValueError) else type(exc).__name__


def _not_a_video(path: Path, exc: BaseException) -> str:
    return f"the file is not a readable video ({_reason(exc)}); pass an MP4 file with H.264 video"


class _EditLook:
    """Posterised luma and a hue rotation + saturation boost, via lookup tables."""

    def __init__(self, prompt: str) -> None:
        r = _Rng("edit", prompt)
        levels = 4 + r.integer(3)
        ys = np.arange(256, dtype=np.float64)
        q = np.rint(np.clip((ys - 16) / 219, 0, 1) * (levels - 1)) / (levels - 1)
        self.lut_y = np.clip(np.rint(16 + q * 219), 16, 235).astype(np.uint8)
        angle = r.sign() * r.uniform(0.6, 1.0) * math.pi * 0.75
        sat = 1.4
        cu, cv = np.meshgrid(np.arange(256) - 128.0, np.arange(256) - 128.0, indexing="ij")
        nu = 128 + sat * (math.cos(angle) * cu - math.sin(angle) * cv)
        nv = 128 + sat * (math.sin(angle) * cu + math.cos(angle) * cv)
        self.lut_u = np.clip(np.rint(nu), 16, 240).astype(np.uint8).ravel()
        self.lut_v = np.clip(np.rint(nv), 16, 240).astype(np.uint8).ravel()

    def apply(self, src: _Planes, dst: _Planes) -> None:
        sy, su, sv = src
        dy, du, dv = dst
        np.take(self.lut_y, sy, out=dy, mode="clip")
        idx = np.left_shift(su, 8, dtype=np.uint16)
        idx |= sv
        np.take(self.lut_u, idx, out=du, mode="clip")
        np.take(self.lut_v, idx, out=dv, mode="clip")


# --------------------------------------------------------------------------------------------------------
# audio


_PENTATONIC = (0, 2, 4, 7, 9, 12, 14, 16, 19, 21)


def _tone(text: str, key: object, n_samples: int) -> _F32:
    """Soft plucked notes of a major pentatonic scale chosen by the text's words, over a quiet drone."""
    out = np.zeros(n_samples, dtype=np.float32)
    if n_samples <= 0:
        return out
    sr = _AUDIO_RATE
    r = _Rng("tone", key)
    root = 440.0 * 2 ** ((55 + r.integer(8) - 69) / 12)
    beat = (0.3, 0.36, 0.42, 0.5)[r.integer(4)]
    words = re.findall(r"\w+", text.lower())[:64] or ["preview"]
    tau = beat * 1.5
    note_len = int(3.5 * tau * sr)
    t_note = np.arange(note_len, dtype=np.float32) / np.float32(sr)
    env = (1 - np.exp(t_note / np.float32(-0.012))) * np.exp(t_note / np.float32(-tau))
    tail = note_len // 6
    env[note_len - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)  # no click where a note ends
    bright = np.float32(0.3) * np.exp(t_note / np.float32(-tau / 2))
    notes: dict[int, _F32] = {}  # one waveform per scale degree, reused
    k = 0
    while (start := round(k * beat * sr)) < n_samples:
        word = words[k % len(words)]
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=4).digest()
        degree = _PENTATONIC[int.from_bytes(digest, "little") % len(_PENTATONIC)]
        if degree not in notes:
            ph = np.float32(2 * math.pi * root * 2 ** (degree / 12)) * t_note
            wave = np.sin(ph) + bright * np.sin(2 * ph) + np.float32(0.08) * np.sin(3 * ph)
            notes[degree] = env * wave
        m = min(note_len, n_samples - start)
        out[start : start + m] += np.float32(0.16 if k % len(words) else 0.2) * notes[degree][:m]
        k += 1
    t = np.arange(n_samples, dtype=np.float32) / np.float32(sr)
    swell = np.float32(0.04) + np.float32(0.01) * np.sin(np.float32(2 * math.pi * 0.25) * t)
    drone = np.sin(np.float32(math.pi * root) * t) + np.float32(0.6) * np.sin(np.float32(1.5 * math.pi * root) * t)
    out += swell * drone
    peak = float(np.max(np.abs(out)))
    if peak > 0.6:
        out *= np.float32(0.6 / peak)
    fade_in, fade_out = min(n_samples, int(0.02 * sr)), min(n_samples, int(0.06 * sr))
    out[:fade_in] *= np.linspace(0.0, 1.0, fade_in, dtype=np.float32)
    out[n_samples - fade_out :] *= np.linspace(1.0, 0.0, fade_out, dtype=np.float32)
    return out


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------
# rendering


def _validate(spec: RenderSpec) -> int:
    for name in ("width", "height"):
        value = getattr(spec, name)
        if not isinstance(value, int) or value % 2 or not _MIN_SIZE <= value <= _MAX_SIZE:
            if spec.mode in ("edit", "extend") and isinstance(value, int):
                # the size comes from an uploaded video: tell the user, not just the caller
                raise RenderError(
                    f"the video is {spec.width}x{spec.height}; the local renderer needs an even width and height "
                    f"from {_MIN_SIZE} to {_MAX_SIZE} px; re-encode the source to such a size (e.g. 1280x720)"
                )
            raise ValueError(f"{name} must be an even integer in [{_MIN_SIZE}, {_MAX_SIZE}], got {value!r}")
    if not isinstance(spec.fps, int) or not 1 <= spec.fps <= 120:
        raise ValueError(f"fps must be an integer in [1, 120], got {spec.fps!r}")
    if not (math.isfinite(spec.seconds) and spec.seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {spec.seconds!r}")
    if spec.mode not in _CAPTION_PREFIX:
        raise ValueError(f"unknown mode {spec.mode!r}")
    if spec.mode in ("edit", "extend"):
        if spec.source is None:
            raise ValueError(f"mode={spec.mode!r} needs `source`")
        if spec.image is not None:
            raise ValueError(f"`image` cannot be combined with mode={spec.mode!r}")
    return max(1, round(spec.seconds * spec.fps))


@dataclass
class _Plan:
    """Per-frame drawing callback plus the soundtrack for a render."""

    draw: Callable[[int, _Planes], None]
    audio: _F32
    closers: list[Callable[[], None]]


def _plan(spec: RenderSpec, n: int) -> _Plan:
    w, h, fps = spec.width, spec.height, spec.fps
    pal = _palette(spec.prompt)
    caption = _CAPTION_PREFIX[spec.mode] + spec.prompt
    n_audio = round(n / fps * _AUDIO_RATE)

    if spec.mode == "edit":
        assert spec.source is not None
        reader = _SourceReader(spec.source, w, h)
        look = _EditLook(spec.prompt)
        overlay = _Overlay(caption, w, h, pal.accent, caption_top=True)
        audio = _tone(spec.prompt, ("source", _file_digest(spec.source)), n_audio)

        def draw_edit(i: int, planes: _Planes) -> None:
            look.apply(reader.frame_at(i / fps), planes)
            overlay.apply(planes, (i + 1) / n)

        return _Plan(draw_edit, audio, [reader.close])

    if spec.mode == "extend":
        assert spec.source is not None
        reader = _SourceReader(spec.source, w, h)
        try:
            n_src = round(reader.duration * fps)
            if n_src >= n:
                raise RenderError(
                    f"extend: the requested total length ({n / fps:.2f} s) must be longer than the source "
                    f"video ({reader.duration:.2f} s); ask for more seconds"
                )
            scene = _SceneDrawer(spec.scene_prompt or spec.prompt, spec.prompt, spec.seed, w, h)
            overlay = _Overlay(caption, w, h, pal.accent, caption_top=False)
            n_src_audio = round(n_src / fps * _AUDIO_RATE)
            # each part fades in/out on its own, so plain concatenation has no click at the seam
            audio = np.concatenate(
                [
                    _tone("", ("source", _file_digest(spec.source)), n_src_audio),
                    _tone(spec.prompt, spec.prompt, n_audio - n_src_audio),
                ]
            )
        except BaseException:
            reader.close()
            raise
        fade = max(1, round(0.5 * fps))
        last: list[_Planes] = []

        def draw_extend(i: int, planes: _Planes) -> None:
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

        return _Plan(draw_extend, audio, [reader.close])

    overlay = _Overlay(caption, w, h, pal.accent, caption_top=False)
    audio = _tone(spec.prompt, spec.prompt, n_audio)
    drawer: _SceneDrawer | _KenBurns
    if spec.image is not None:
        drawer = _KenBurns(spec.image, w, h, spec.scene_prompt or spec.prompt, spec.seed, n / fps)
    else:
        scene_prompt = spec.scene_prompt if spec.mode == "remix" and spec.scene_prompt else spec.prompt
        drawer = _SceneDrawer(scene_prompt, spec.prompt, spec.seed, w, h)

    def draw_scene(i: int, planes: _Planes) -> None:
        drawer.draw(i / fps, planes)
        overlay.apply(planes, (i + 1) / n)

    return _Plan(draw_scene, audio, [])


def _sprite_indices(n: int) -> list[int]:
    count = _SPRITE_COLS * _SPRITE_ROWS
    return [round(k * (n - 1) / (count - 1)) for k in range(count)]


def _rgb_frame(frame: VideoFrame, width: int | None = None, height: int | None = None) -> _U8:
    out = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    return np.asarray(out, dtype=np.uint8)


def render(spec: RenderSpec, out_dir: Path, *, cancelled: Callable[[], bool] | None = None) -> RenderResult:
    """Render `spec` into out_dir/video.mp4, thumbnail.webp and spritesheet.jpg.

    Raises RenderError if the source video / image cannot be used, ValueError for an invalid spec and
    RenderCancelled if `cancelled()` returns true (checked every few frames); partial files are removed.
    """
    n = _validate(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = {
        "video": out_dir / "video.mp4",
        "thumbnail": out_dir / "thumbnail.webp",
        "spritesheet": out_dir / "spritesheet.jpg",
    }
    token = uuid.uuid4().hex[:12]
    temp = {key: out_dir / f".{path.name}.{token}.part" for key, path in final.items()}

    def check_cancel() -> None:
        if cancelled is not None and cancelled():
            raise RenderCancelled("render cancelled")

    try:
        check_cancel()
        plan = _plan(spec, n)
        try:
            _encode(spec, n, plan, temp, check_cancel)
        finally:
            for close in plan.closers:
                close()
        check_cancel()
        # the video goes last: its presence means the render is complete
        for key in ("thumbnail", "spritesheet", "video"):
            temp[key].replace(final[key])
    except BaseException:
        for path in temp.values():
            path.unlink(missing_ok=True)
        raise
    return RenderResult(
        video=final["video"],
        thumbnail=final["thumbnail"],
        spritesheet=final["spritesheet"],
        frames=n,
        duration=n / spec.fps,
    )


def _encode(spec: RenderSpec, n: int, plan: _Plan, temp: dict[str, Path], check_cancel: Callable[[], None]) -> None:
    w, h, fps = spec.width, spec.height, spec.fps
    container = av.open(
        str(temp["video"]), mode="w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}
    )
    try:
        vstream = container.add_stream("libx264", rate=fps, options={"preset": _X264_PRESET, "crf": _X264_CRF})
        vstream.width = w
        vstream.height = h
        vstream.pix_fmt = "yuv420p"
        vctx = vstream.codec_context
        vctx.thread_count = _X264_THREADS
        vctx.thread_type = "FRAME"
        vctx.gop_size = 2 * fps
        vctx.colorspace = _AVCOL_SMPTE170M
        vctx.color_primaries = _AVCOL_SMPTE170M
        vctx.color_trc = _AVCOL_SMPTE170M
        vctx.color_range = _AVCOL_RANGE_MPEG
        astream = container.add_stream("aac", rate=_AUDIO_RATE, options={"aac_coder": "fast"})
        astream.layout = "mono"
        astream.format = "fltp"
        astream.bit_rate = _AUDIO_BIT_RATE

        vtb = Fraction(1, fps)
        atb = Fraction(1, _AUDIO_RATE)
        sprite_at = _sprite_indices(n)
        thumb_at = n // 3
        cw = _even(_SPRITE_CELL_WIDTH) if w >= _SPRITE_CELL_WIDTH else w
        ch = max(2, _even(round(cw * h / w)))
        sheet = np.zeros((_SPRITE_ROWS * ch, _SPRITE_COLS * cw, 3), dtype=np.uint8)
        audio = plan.audio
        pushed = 0

        for i in range(n):
            if i % _CANCEL_CHECK_EVERY == 0:
                check_cancel()
            frame = VideoFrame(w, h, "yuv420p")
            frame.pts = i
            frame.time_base = vtb
            frame.colorspace = _AVCOL_SMPTE170M
            frame.color_range = _AVCOL_RANGE_MPEG
            plan.draw(i, _plane_views(frame))
            container.mux(vstream.encode(frame))

            target = len(audio) if i == n - 1 else round((i + 1) / fps * _AUDIO_RATE)
            if target > pushed:
                chunk = np.ascontiguousarray(audio[pushed:target].reshape(1, -1))
                aframe = AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate = _AUDIO_RATE
                aframe.pts = pushed
                aframe.time_base = atb
                container.mux(astream.encode(aframe))
                pushed = target

            if i == thumb_at:
                Image.fromarray(_rgb_frame(frame)).save(temp["thumbnail"], format="WEBP", quality=80, method=1)
            for k, idx in enumerate(sprite_at):
                if idx == i:
                    r, c = divmod(k, _SPRITE_COLS)
                    sheet[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw] = _rgb_frame(frame, cw, ch)

        container.mux(vstream.encode(None))
        container.mux(astream.encode(None))
        Image.fromarray(sheet).save(temp["spritesheet"], format="JPEG", quality=85)
    except BaseException:
        with contextlib.suppress(Exception):  # keep the original error; the temp file is removed anyway
            container.close()
        raise
    container.close()
