"""The text on every frame: the "LOCAL PREVIEW" badge, the wrapped caption and the progress line."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from sora_nb.server.engines.synthetic.color import RGB, Planes, even, yuv_of
from sora_nb.server.engines.synthetic.patches import apply_patch, patch_from_image

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


def _badge(width: int, height: int) -> tuple[Image.Image, int, int]:
    unit = min(width, height)
    font = _font(max(8, round(unit * 0.04)))
    margin = even(max(4, round(unit * 0.028)))
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
    x = even((width - bw) / 2)
    y = even(top) if top is not None else even(height - bh - margin)
    return img, max(0, x), max(0, y)


class Overlay:
    """Badge + caption patches and the progress line, applied to every frame of a segment."""

    def __init__(self, caption: str, width: int, height: int, accent: RGB, caption_top: bool) -> None:
        badge, bx, by = _badge(width, height)
        self.patches = [patch_from_image(badge, bx, by)]
        self.bar_h = max(2, even(round(height * 0.007)))
        top = by + badge.size[1] + by // 2 if caption_top else None
        cap = _caption(caption, width, height - self.bar_h, top)
        if cap is not None:
            self.patches.append(patch_from_image(*cap))
        self.accent = yuv_of(accent)
        self.width, self.height = width, height

    def apply(self, planes: Planes, progress: float) -> None:
        y, u, v = planes
        for p in self.patches:
            apply_patch(planes, p)
        fill = even(round(self.width * min(max(progress, 0.0), 1.0)))
        r0 = self.height - self.bar_h
        ay, au, av_ = self.accent
        y[r0:, :fill] = ay
        y[r0:, fill:] = 28
        u[r0 // 2 :, : fill // 2] = au
        u[r0 // 2 :, fill // 2 :] = 128
        v[r0 // 2 :, : fill // 2] = av_
        v[r0 // 2 :, fill // 2 :] = 128
