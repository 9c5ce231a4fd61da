"""Hardening (issue 12): what the cache serves, packs and shows.

* A shared cache may hold links to anyone's files: nothing the cache serves, packs or copies is a link or lies
  outside the cache root (item 2).
* A poster that cannot be read safely (a tiny file declaring a decompression bomb) is dropped; the job, the
  widget and the exported page still work (item 3).
* Every poster or video request of a widget's front end gets an answer, an error one when there is no file
  (item 17).

Videos come from the real local server; a thumbnail only a hostile server would send comes from the tiny
``http.server`` of ``test_bad_input``.
"""

from __future__ import annotations

import logging
import shutil
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import sora_nb
from sora_nb import config
from sora_nb.cache import VideoCache
from sora_nb.cli import main as cli_main
from sora_nb.server import ServerHandle
from sora_nb.widgets.gallery import Gallery
from tests.reliability.test_bad_input import MP4, Reply, Responder, _flow, _Hostile, hostile  # noqa: F401
from tests.widgets.test_job import wait_status

Configured = Callable[..., ServerHandle]
Sent = list[tuple[dict[str, Any], list[bytes]]]
PRIVATE_KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA not really a key\n" * 40


# ----- helpers ------------------------------------------------------------------------------------------------
def _png(width: int, height: int, pixels: bytes = b"") -> bytes:
    """A greyscale PNG declaring ``width`` x ``height``; ``pixels`` (raw scanlines) may be far fewer."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels or bytes(64), 9))
        + chunk(b"IEND", b"")
    )


def _private_files(tmp_path: Path) -> tuple[Path, Path]:
    """A classmate's target outside the cache: a private key, and a private photo (an image a poster could show)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_rsa"
    key.write_bytes(PRIVATE_KEY)
    photo = home / "passport.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(photo)
    return key, photo


def _capture(widget: Any, monkeypatch: pytest.MonkeyPatch) -> Sent:
    sent: Sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append((content, list(buffers or []))))
    return sent


def _ask(widget: Any, sent: Sent, request: dict[str, Any]) -> Sent:
    """The messages the widget sends in answer to one front-end request."""
    before = len(sent)
    widget._on_message(widget, request, [])
    return sent[before:]


def _zip_bytes(archive: Path) -> bytes:
    with zipfile.ZipFile(archive) as zipped:
        return b"".join(zipped.read(name) for name in zipped.namelist())


# ----- item 2: links in a shared cache ------------------------------------------------------------------------
def _plant(linked: str, directory: Path, key: Path, photo: Path, outside: Path) -> None:
    """What a classmate does to a video's directory in a shared cache."""
    if linked == "folder":  # the video's whole directory is a link to a folder of theirs
        outside.mkdir()
        shutil.copy(directory / "video.json", outside / "video.json")
        (outside / "video.mp4").symlink_to(key)
        shutil.rmtree(directory)
        directory.symlink_to(outside, target_is_directory=True)
        return
    name, target = {
        "video": ("video.mp4", key),
        "thumbnail": ("thumbnail.webp", photo),
        "spritesheet": ("spritesheet.jpg", photo),
    }[linked]
    (directory / name).unlink()
    (directory / name).symlink_to(target)


@pytest.mark.parametrize("linked", ["video", "thumbnail", "spritesheet", "folder"])
def test_links_in_a_shared_cache_are_never_served_packed_or_copied(
    linked: str,
    configured: Configured,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configured()
    key, photo = _private_files(tmp_path)
    job = sora_nb.submit(f"a shared clip, {linked} linked")
    job.result(timeout=60)
    assert job.path is not None and job.id is not None
    cache = VideoCache(tmp_path / "cache")
    _plant(linked, job.path.parent, key, photo, tmp_path / "home" / "clips")

    with caplog.at_level(logging.WARNING, logger="sora_nb"):
        entries = cache.ls()
    reported = [p for e in entries for p in (e.path, e.thumbnail, e.spritesheet) if p is not None]
    assert all(not p.is_symlink() and not p.parent.is_symlink() for p in reported)
    assert "link" in caplog.text  # each skipped file is named in the log
    if linked in ("video", "folder"):
        assert entries == [] and cache.get(job.id) is None  # no MP4 that is its own: no video at all
    else:
        assert len(entries) == 1 and getattr(entries[0], linked) is None  # the video itself is still there

    gallery = sora_nb.history()
    sent = _capture(gallery, monkeypatch)
    for index in range(len(gallery)):
        for kind in ("video", "poster"):
            for _, buffers in _ask(gallery, sent, {"type": kind, "index": index}):
                assert all(PRIVATE_KEY[:30] not in b for b in buffers)
                assert kind != "poster" or linked != "thumbnail" or not any(buffers)  # no poster of the photo
    archive = gallery.export(tmp_path / "out" / "class.zip")
    assert PRIVATE_KEY[:30] not in _zip_bytes(archive) and photo.read_bytes() not in _zip_bytes(archive)
    page = gallery.export(tmp_path / "out" / "index.html")
    hrefs = [part.split('"')[0] for part in page.read_text().split('href="')[1:]]
    root = cache.root.resolve()
    assert all((page.parent / href).resolve().is_relative_to(root) for href in hrefs)  # nothing of the classmate's

    again = sora_nb.submit(f"a shared clip, {linked} linked")  # the same request: the cache does not hand the link
    path = again.result(timeout=60)
    assert not path.is_symlink() and path.read_bytes()[4:8] == b"ftyp"
    assert again.thumbnail is None or not again.thumbnail.is_symlink()
    assert again.spritesheet is None or not again.spritesheet.is_symlink()
    out = tmp_path / "copy.mp4"
    assert cli_main(["generate", f"a shared clip, {linked} linked", "--out", str(out)]) == 0
    assert out.read_bytes()[4:8] == b"ftyp"  # the CLI copies the video, never the key


def test_a_link_swapped_in_after_listing_is_refused_when_read(
    configured: Configured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The gallery lists a regular file; a classmate then swaps in a link: sending and packing refuse it."""
    configured()
    key, photo = _private_files(tmp_path)
    w = sora_nb.generate("a clip swapped for a link")
    w.result(timeout=60)
    wait_status(w, ("completed",), timeout=15)
    gallery = sora_nb.history()
    assert gallery.items[0].path == w.path and w.path is not None and w.job.thumbnail is not None
    w.path.unlink()
    w.path.symlink_to(key)
    w.job.thumbnail.unlink()
    w.job.thumbnail.symlink_to(photo)

    sent = _capture(gallery, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="sora_nb"):
        (answer,) = _ask(gallery, sent, {"type": "video", "index": 0})
        assert answer[0]["type"] == "video-error" and answer[0]["index"] == 0 and not answer[1]
        assert "link" in answer[0]["message"] and "again" in answer[0]["message"]  # what happened, what to do
        (poster,) = _ask(gallery, sent, {"type": "poster", "index": 0})
        assert poster[0]["type"] == "poster-error" and not any(poster[1])
        archive = gallery.export(tmp_path / "class.zip")
    assert PRIVATE_KEY[:30] not in _zip_bytes(archive)
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == ["index.html"]  # the card stays on the page, without a video
    assert "link" in caplog.text

    own = _capture(w, monkeypatch)
    (answer,) = _ask(w, own, {"type": "video"})
    assert answer[0] == {"type": "video-error", "id": w.id, "message": answer[0]["message"]} and not answer[1]


# ----- item 3: decompression-bomb posters ---------------------------------------------------------------------
BOMBS = [
    pytest.param(lambda: _png(30_000, 30_000), id="declares-900M-pixels"),  # Pillow raises DecompressionBombError
    pytest.param(lambda: _png(10_000, 10_000), id="declares-100M-pixels"),  # Pillow only warns
    pytest.param(lambda: _png(5000, 5000, (b"\x00" + bytes(5000)) * 5000), id="decodable-25M-pixels"),
]


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_bomb_poster_is_dropped_and_the_widget_and_page_still_work(
    bomb: Callable[[], bytes],
    configured: Configured,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shared cache's thumbnail is a tiny PNG declaring a huge image: no poster, and nothing else breaks."""
    configured()
    first = sora_nb.submit("a clip with a bomb for a poster")
    first.result(timeout=60)
    assert first.thumbnail is not None
    first.thumbnail.write_bytes(bomb())

    with warnings.catch_warnings(record=True) as warned, caplog.at_level(logging.WARNING, logger="sora_nb"):
        warnings.simplefilter("always")
        w = sora_nb.generate("a clip with a bomb for a poster")  # the same request: a cache hit
        w.result(timeout=60)
        wait_status(w, ("completed",), timeout=15)
        assert w.poster == "" and w.video_id == first.id
        assert "<img" not in w._repr_mimebundle_()[0]["text/html"]
        gallery = sora_nb.history()
        sent = _capture(gallery, monkeypatch)
        (poster,) = _ask(gallery, sent, {"type": "poster", "index": 0})
        page = gallery.export(tmp_path / "sheet.html").read_text()
        archive = gallery.export(tmp_path / "sheet.zip")
    assert poster[0]["type"] == "poster-error" and not any(poster[1])
    assert "data:image/jpeg" not in page and "<video" in page  # the video is on the page, without a poster
    with zipfile.ZipFile(archive) as zipped:
        assert sum(name.endswith(".mp4") for name in zipped.namelist()) == 1
    assert not [m for m in warned if issubclass(m.category, Image.DecompressionBombWarning)]
    assert "poster" in caplog.text  # the dropped poster is named in the log


def test_the_client_refuses_a_thumbnail_declaring_a_bomb(
    hostile: Callable[[Responder], _Hostile],  # noqa: F811 (the fixture of test_bad_input, imported above)
    tmp_path: Path,
) -> None:
    """A server's thumbnail is a tiny PNG declaring 30000 x 30000 pixels: it is not cached; a sane one is."""
    flow = _flow()
    bomb, sane = _png(30_000, 30_000), _png(8, 8)

    def respond(method: str, path: str) -> Reply:
        if "variant=thumbnail" in path:
            return Reply(body=bomb, ctype="image/png")
        if "variant=spritesheet" in path:
            return Reply(body=sane, ctype="image/png")
        return flow(method, path)

    saved = dict(config._explicit)
    sora_nb.configure(base_url=hostile(respond).url, api_key="sk-test", provider="openai", cache_dir=tmp_path / "c")
    try:
        job = sora_nb.submit("a clip whose thumbnail is a bomb")
        path = job.result(timeout=60)
    finally:
        config._explicit.clear()
        config._explicit.update(saved)
    assert path.read_bytes() == MP4  # the video alone decides success
    assert job.thumbnail is None and not (path.parent / "thumbnail.webp").exists()
    assert job.spritesheet is not None and job.spritesheet.read_bytes() == sane


# ----- item 17: every poster and video request is answered ----------------------------------------------------
def test_every_gallery_poster_and_video_request_is_answered(
    configured: Configured, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured()
    for prompt in ("a kept clip", "a clip removed later"):
        sora_nb.submit(prompt).result(timeout=60)
    gallery: Gallery = sora_nb.history()
    gone = gallery.items[0]
    assert gone.path is not None and gone.thumbnail is not None
    gone.path.unlink()  # pruned by another process after the gallery was shown
    gone.thumbnail.unlink()
    sent = _capture(gallery, monkeypatch)

    kept = _ask(gallery, sent, {"type": "video", "index": 1})
    assert kept and all(m["type"] == "video-chunk" for m, _ in kept)
    (poster,) = _ask(gallery, sent, {"type": "poster", "index": 1})
    assert poster[0] == {"type": "poster", "index": 1} and poster[1][0][:3] == b"\xff\xd8\xff"
    for index in (0, 7, -1, "x"):  # a removed file, and indices with no card at all
        (video,) = _ask(gallery, sent, {"type": "video", "index": index})
        assert video[0]["type"] == "video-error" and video[0]["index"] == index and not video[1]
        assert "again" in video[0]["message"]  # what to do
        (poster,) = _ask(gallery, sent, {"type": "poster", "index": index})
        assert poster[0]["type"] == "poster-error" and poster[0]["index"] == index


def test_a_video_request_without_a_file_is_answered_by_the_job_widget(
    configured: Configured, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured()
    failed = sora_nb.generate("a moderation-test scene")  # fails: no video at all
    wait_status(failed, ("failed",), timeout=15)
    done = sora_nb.generate("a clip deleted under the widget")
    path = done.result(timeout=60)
    path.unlink()
    for w in (failed, done):
        (answer,) = _ask(w, _capture(w, monkeypatch), {"type": "video"})
        assert answer[0]["type"] == "video-error" and answer[0]["id"] == (w.id or "") and not answer[1]
        assert "again" in answer[0]["message"]
