"""What moves behind the text: a prompt's scene (sky, hills, ground, soft discs) or a slow pan/zoom over an image.

`SceneDrawer` scrolls a backdrop painted once and blends the discs on their paths; `KenBurns` resamples an
input image per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sora_nb.server.engines.synthetic.color import (
    F32,
    RGB,
    U_COEF,
    V_COEF,
    Y_COEF,
    Palette,
    Planes,
    even,
    lerp_rgb,
    palette,
    rgb_to_yuv_planes,
    to_u8,
)
from sora_nb.server.engines.synthetic.patches import Patch, blend, patch_from_layers
from sora_nb.server.engines.synthetic.rng import Rng
from sora_nb.server.engines.synthetic.sources import load_image


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
    r = Rng("scene", scene_prompt, seed)
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


def _paint(scene: _Scene, pal: Palette, width: int, height: int, step: int, coef: F32) -> F32:
    """Sample the backdrop every `step` px (pixel centres) in the colour space `coef` (3 x k, linear).

    Works directly in Y-16 / U-128 / V-128 (linear in RGB), so luma is painted at full resolution and
    chroma at quarter resolution without any RGB image or 2x2 averaging.
    """
    w, h = width, height
    x = (np.arange(0, w, step, dtype=np.float32) + np.float32(step / 2))[None, :]
    y = (np.arange(0, h, step, dtype=np.float32) + np.float32(step / 2))[:, None]
    hor = scene.horizon * h
    two_pi = np.float32(2 * math.pi)

    def col(rgb: RGB) -> F32:
        out: F32 = np.array(rgb, dtype=np.float32) @ coef
        return out

    def lerp(a: RGB, b: RGB, t: F32) -> F32:
        ca, cb = col(a), col(b)
        out: F32 = ca + (cb - ca) * t[..., None]
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


def _background(scene: _Scene, pal: Palette, width: int, height: int) -> Planes:
    """One horizontal period (width px) of the scrolling backdrop, returned twice side by side."""
    luma = _paint(scene, pal, width, height, 1, Y_COEF[:, None])
    chroma = _paint(scene, pal, width, height, 2, np.stack([U_COEF, V_COEF], axis=1))
    planes = (luma[..., 0] + np.float32(16), chroma[..., 0] + np.float32(128), chroma[..., 1] + np.float32(128))
    y8, u8, v8 = (np.concatenate([to_u8(p)] * 2, axis=1) for p in planes)
    return y8, u8, v8


def _disc_patch(radius: float, colour: RGB, opacity: float) -> Patch:
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
    rgb = lerp_rgb(colour, (255.0, 255.0, 255.0), shine)
    return patch_from_layers(0, 0, rgb, alpha)


class SceneDrawer:
    """Sky/hills/ground backdrop scrolling sideways plus soft discs on smooth paths."""

    def __init__(self, scene_prompt: str, palette_prompt: str, seed: int, width: int, height: int) -> None:
        self.scene = _scene(scene_prompt, seed)
        pal = palette(palette_prompt)
        self.width, self.height = width, height
        self.bg = _background(self.scene, pal, width, height)
        unit = min(width, height)
        self.discs = [
            (d, _disc_patch(d.radius * unit, pal.discs[d.colour % len(pal.discs)], d.opacity)) for d in self.scene.discs
        ]

    def draw(self, t: float, planes: Planes) -> None:
        w, h = self.width, self.height
        off = even(self.scene.scroll * w * t) % w
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
            blend(y, x0, y0, patch.inv_y, patch.pre_y)
            blend(u, x0 // 2, y0 // 2, patch.inv_c, patch.pre_u)
            blend(v, x0 // 2, y0 // 2, patch.inv_c, patch.pre_v)


class KenBurns:
    """Slow zoom (1.0 -> ~1.15) and pan over a still image, resampled per frame by Pillow."""

    def __init__(self, path: Path, width: int, height: int, key: str, seed: int, seconds: float) -> None:
        img = load_image(path, width, height)
        rgb = np.asarray(img, dtype=np.float32)
        yf, uf, vf = rgb_to_yuv_planes(rgb)
        self.y_img = Image.fromarray(to_u8(yf))
        self.u_img = Image.fromarray(to_u8(uf))
        self.v_img = Image.fromarray(to_u8(vf))
        r = Rng("kenburns", key, seed)
        self.zoom = r.uniform(1.12, 1.2)
        self.dx = r.sign() * r.uniform(0.4, 1.0) * (width / 2) * (1 - 1 / self.zoom)
        self.dy = r.sign() * r.uniform(0.2, 0.8) * (height / 2) * (1 - 1 / self.zoom)
        self.width, self.height, self.seconds = width, height, max(seconds, 1e-6)

    def draw(self, t: float, planes: Planes) -> None:
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
