"""Colour for 4:2:0 frames: BT.601 limited-range YUV planes, RGB -> YUV, a prompt's palette, the edit look.

Frames are three uint8 planes (`Planes`): Y at full size, U and V at half width and height, so anything placed
on them sits on even coordinates (`even`).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sora_nb.server.engines.synthetic.rng import Rng

U8 = NDArray[np.uint8]
U16 = NDArray[np.uint16]
F32 = NDArray[np.float32]
Planes = tuple[U8, U8, U8]
RGB = tuple[float, float, float]

# BT.601 limited range, RGB in 0..255
Y_COEF = np.array([0.256788, 0.504129, 0.097906], dtype=np.float32)
U_COEF = np.array([-0.148223, -0.290993, 0.439216], dtype=np.float32)
V_COEF = np.array([0.439216, -0.367788, -0.071427], dtype=np.float32)


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r * 255.0, g * 255.0, b * 255.0)


def yuv_of(rgb: RGB) -> tuple[int, int, int]:
    arr = np.array(rgb, dtype=np.float32)
    y = 16.0 + float(arr @ Y_COEF)
    u = 128.0 + float(arr @ U_COEF)
    v = 128.0 + float(arr @ V_COEF)
    return (round(min(max(y, 16.0), 235.0)), round(u), round(v))


def rgb_to_yuv_planes(rgb: F32) -> tuple[F32, F32, F32]:
    """(H, W, 3) float RGB -> Y (H, W) and U, V (H/2, W/2) as floats (H, W even)."""
    h, w = rgb.shape[0], rgb.shape[1]
    y = rgb @ Y_COEF + np.float32(16.0)
    small = rgb.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3), dtype=np.float32)
    u = small @ U_COEF + np.float32(128.0)
    v = small @ V_COEF + np.float32(128.0)
    return y, u, v


def to_u8(arr: F32) -> U8:
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Palette:
    sky_top: RGB
    sky_horizon: RGB
    cloud: RGB
    hills: RGB
    ground_far: RGB
    ground_near: RGB
    discs: tuple[RGB, ...]
    accent: RGB


def palette(prompt: str) -> Palette:
    # Hues vary freely with the prompt; brightness structure stays similar so text and scene stay legible.
    r = Rng("palette", prompt)
    h = r.unit()
    ground_h = h + r.uniform(0.25, 0.45)
    ground_s = r.uniform(0.35, 0.6)
    return Palette(
        sky_top=_hsv(h, r.uniform(0.5, 0.75), r.uniform(0.28, 0.38)),
        sky_horizon=_hsv(h + r.uniform(0.06, 0.16), r.uniform(0.3, 0.5), r.uniform(0.86, 0.95)),
        cloud=_hsv(h + 0.1, 0.08, 1.0),
        hills=_hsv(h + r.uniform(0.45, 0.6), r.uniform(0.25, 0.45), r.uniform(0.42, 0.5)),
        ground_far=_hsv(ground_h, ground_s, r.uniform(0.5, 0.6)),
        ground_near=_hsv(ground_h + 0.03, ground_s + 0.1, r.uniform(0.18, 0.24)),
        discs=tuple(_hsv(h + 0.17 + k * 0.618034, r.uniform(0.5, 0.8), r.uniform(0.9, 1.0)) for k in range(8)),
        accent=_hsv(h + 0.5, 0.75, 1.0),
    )


def lerp_rgb(a: RGB, b: RGB, t: F32) -> F32:
    """Interpolate colours a -> b by t (any shape); returns t.shape + (3,)."""
    ca = np.array(a, dtype=np.float32)
    cb = np.array(b, dtype=np.float32)
    tt = t[..., None]
    out: F32 = ca + (cb - ca) * tt
    return out


def even(v: float) -> int:
    return int(v) // 2 * 2


class EditLook:
    """Posterised luma and a hue rotation + saturation boost, via lookup tables."""

    def __init__(self, prompt: str) -> None:
        r = Rng("edit", prompt)
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

    def apply(self, src: Planes, dst: Planes) -> None:
        sy, su, sv = src
        dy, du, dv = dst
        np.take(self.lut_y, sy, out=dy, mode="clip")
        idx = np.left_shift(su, 8, dtype=np.uint16)
        idx |= sv
        np.take(self.lut_u, idx, out=du, mode="clip")
        np.take(self.lut_v, idx, out=dv, mode="clip")
