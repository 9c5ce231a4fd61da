"""Premultiplied patches (badge, caption, discs) blended into the YUV planes in integer arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from sora_nb.server.engines.synthetic.color import F32, U8, U16, U_COEF, V_COEF, Y_COEF, Planes


@dataclass(frozen=True)
class Patch:
    """An even-aligned RGBA patch pre-converted to premultiplied YUV (alpha in 0..256)."""

    x: int
    y: int
    inv_y: U16
    pre_y: U16
    inv_c: U16
    pre_u: U16
    pre_v: U16


def _premultiply(value: F32, alpha: F32) -> tuple[U16, U16]:
    a256 = np.rint(alpha * 256.0)
    pre = np.minimum(np.rint(np.clip(value, 0.0, 255.0) * alpha * 256.0), a256 * 255.0)
    return (256.0 - a256).astype(np.uint16), pre.astype(np.uint16)


def patch_from_layers(x: int, y: int, rgb: F32, alpha: F32) -> Patch:
    """Build a patch from float RGB (h, w, 3) and alpha in 0..1 (h, w); x, y, h, w even."""
    h, w = alpha.shape
    yf = rgb @ Y_COEF + np.float32(16.0)
    uf = rgb @ U_COEF + np.float32(128.0)
    vf = rgb @ V_COEF + np.float32(128.0)
    inv_y, pre_y = _premultiply(yf, alpha)

    def quarter(a: F32) -> F32:
        out: F32 = a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float32)
        return out

    a_c = quarter(alpha)
    safe = np.maximum(a_c, np.float32(1e-6))
    inv_c, pre_u = _premultiply(quarter(uf * alpha) / safe, a_c)
    _, pre_v = _premultiply(quarter(vf * alpha) / safe, a_c)
    return Patch(x, y, inv_y, pre_y, inv_c, pre_u, pre_v)


def patch_from_image(img: Image.Image, x: int, y: int) -> Patch:
    """RGBA image placed at (x, y) (both even) -> patch; pads to even size."""
    w, h = img.size
    if w % 2 or h % 2:
        padded = Image.new("RGBA", (w + w % 2, h + h % 2), (0, 0, 0, 0))
        padded.paste(img, (0, 0))
        img = padded
    arr = np.asarray(img, dtype=np.float32)
    return patch_from_layers(x, y, arr[..., :3], arr[..., 3] / np.float32(255.0))


def blend(plane: U8, x0: int, y0: int, inv: U16, pre: U16) -> None:
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


def apply_patch(planes: Planes, p: Patch) -> None:
    y, u, v = planes
    blend(y, p.x, p.y, p.inv_y, p.pre_y)
    blend(u, p.x // 2, p.y // 2, p.inv_c, p.pre_u)
    blend(v, p.x // 2, p.y // 2, p.inv_c, p.pre_v)
