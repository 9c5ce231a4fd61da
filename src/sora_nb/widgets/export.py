"""The contact sheet of a gallery: one HTML page (posters inline, relative links to the MP4s), or a ZIP of that
page with the videos, to share a sweep or a class's results outside Jupyter.

Only cache files of the cache's own are packed or linked (``open_asset`` refuses links); a card without one
stays on the page, without a video.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sora_nb.cache import open_asset
from sora_nb.widgets._base import CARD_POSTER_WIDTH, CHUNK_BYTES, poster_url

if TYPE_CHECKING:
    from sora_nb.widgets.gallery import Card

log = logging.getLogger("sora_nb")

_STYLE = (
    "<style>body{font-family:sans-serif;margin:16px}main{display:grid;grid-template-columns:repeat(auto-fill,"
    "minmax(260px,1fr));gap:12px}figure{margin:0}img,video{width:100%;border-radius:6px}figcaption{font-size:13px}"
    "</style>"
)


def contact_sheet(title: str, cards: Sequence[Card], path: Path, *, local: bool) -> Path:
    """Write the contact sheet of ``cards`` to ``path``: a ZIP (page and videos) if it ends in ``.zip``, else an
    HTML page linking to the cached MP4s by relative paths. Returns the path written."""
    target = path.expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
            links = {}
            for card in cards:
                if card.path is not None and card.video_id:
                    name = f"videos/{card.path.parent.name}.mp4"
                    if _pack(archive, card.path, name):
                        links[id(card)] = name
            archive.writestr("index.html", page(title, cards, lambda card: links.get(id(card)), local=local))
        return target

    def relative(card: Card) -> str | None:
        return os.path.relpath(card.path, target.parent) if card.path else None

    target.write_text(page(title, cards, relative, local=local))
    return target


def page(title: str, cards: Sequence[Card], link: Callable[[Card], str | None], *, local: bool) -> str:
    """The HTML page: one figure per card (its player when ``link`` gives its MP4, else its poster)."""
    rows = []
    for card in cards:
        state = card.state()
        poster = poster_url(card.thumbnail, CARD_POSTER_WIDTH)
        href = link(card)
        if href:
            media = (
                f'<video controls preload="metadata" playsinline poster="{poster}" '
                f'src="{html.escape(href)}"></video><a href="{html.escape(href)}">MP4</a>'
            )
        else:
            media = f'<img src="{poster}" alt="">' if poster else '<div class="none">no video</div>'
        star = '<span aria-label="starred">★</span> ' if state.get("starred") else ""  # a playground's takes
        note = f"<br><i>{html.escape(state['note'])}</i>" if state.get("note") else ""
        rows.append(
            f"<figure>{media}<figcaption>{star}<b>{html.escape(state['label'] or state['prompt'])}</b><br>"
            f"{html.escape(state['prompt'])}<br><code>{html.escape(state['video_id'] or state['status'])}</code>"
            f"{note}</figcaption></figure>"
        )
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>{_STYLE}"
        f"<h1>{html.escape(title)}</h1><p>{len(cards)} videos, exported {stamp}"
        f"{' (local preview: synthetic videos, not a real model)' if local else ''}</p>"
        f"<main>{''.join(rows)}</main>"
    )


def _pack(archive: zipfile.ZipFile, path: Path, name: str) -> bool:
    """Copy a cached MP4 into ``archive`` as ``name``; False (logged) when it is gone or not the cache's own."""
    try:
        with open_asset(path) as src:
            info = zipfile.ZipInfo(name, time.localtime()[:6])  # not the file's: a planted 1970 breaks ZIP
            info.file_size = os.fstat(src.fileno()).st_size  # lets zipfile choose ZIP64 for a huge file
            info.external_attr = 0o644 << 16
            with archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
    except OSError as exc:
        log.warning("sora_nb: left %s out of the archive: %s", path, exc)
        return False
    return True
