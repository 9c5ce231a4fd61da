"""sora_nb.widgets.gallery and .export: a gallery's cards, its player, Cancel all, and the contact sheet, against
the real local server."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import sora_nb
from sora_nb import engine as engines
from sora_nb.server import ServerHandle

Configured = Callable[..., ServerHandle]


def test_a_card_reopens_its_full_player(configured: Configured) -> None:
    configured()
    sora_nb.submit("reopened from history").result(timeout=60)
    gallery = sora_nb.history()
    player = gallery.open_player(0)
    assert player is not None and player.result(timeout=30) == gallery.items[0].path
    assert player.job.cached and hasattr(player, "remix")
    data, _ = gallery._repr_mimebundle_()
    assert data["text/plain"] == "Gallery('History: 1 videos in the cache', 1 videos)"
    assert repr(gallery) == "Gallery('History: 1 videos in the cache', 1 videos, 1 done)"
    assert "application/vnd.jupyter.widget-view+json" in data


def test_a_card_waiting_for_a_busy_engine_says_why(configured: Configured) -> None:
    configured(dialect="aquiles", speed=4.0)  # one job at a time: the sweep's other jobs are refused, then queued
    gallery = sora_nb.sweep(["a fox in snow", "an owl at night", "a heron over a lake"], seconds=4)
    seen: list[tuple[str, str]] = []
    gallery.observe(lambda change: seen.extend((c["status"], c["waiting"]) for c in change["new"]), names=["cards"])
    gallery.wait(timeout=180)
    assert engines._engine is not None
    note = f"waiting: the engine at {engines._engine.client.wire.server} runs 1 job at a time"
    assert ("queued", note) in seen, seen
    assert {text for status, text in seen if status != "queued"} == {""}  # only a queued card says it waits
    assert all(card["waiting"] == "" for card in gallery.cards)


def test_cancel_all_stops_running_jobs_and_starts_no_more(configured: Configured) -> None:
    handle = configured(speed=0.1)
    gallery = sora_nb.sweep([f"slow clip {i}" for i in range(5)], max_concurrency=2)
    while sum(job.id is not None for job in gallery.jobs) < 2:
        time.sleep(0.02)
    gallery._on_message(gallery, {"type": "cancel-all"}, [])
    assert gallery.wait(timeout=30) == [None] * 5
    assert len(gallery.jobs) == 2  # the other three were never started
    deadline = time.monotonic() + 10
    while handle.app.store.jobs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.app.store.jobs() == []
    assert gallery.counts["failed"] == 5 and gallery.counts["queued"] == 0
    assert [card["status"] for card in gallery.cards] == ["cancelled"] * 5


def test_export_writes_a_contact_sheet_page_with_relative_links_or_a_zip_with_the_videos(
    configured: Configured, tmp_path: Path
) -> None:
    configured()
    for prompt in ("a red kite", "a blue kite", "a green boat"):
        sora_nb.submit(prompt).result(timeout=60)
    everything = sora_nb.history()
    page = everything.export(tmp_path / "sheet" / "index.html")
    text = page.read_text()
    assert text.count("<figure>") == 3 and "data:image/jpeg;base64," in text
    hrefs = [part.split('"')[0] for part in text.split('href="')[1:]]
    assert len(hrefs) == 3 and not any(href.startswith("/") for href in hrefs)  # relative links
    assert all((page.parent / href).resolve().is_file() for href in hrefs)
    archive = everything.export(tmp_path / "class.zip")
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        assert "index.html" in names and sum(n.endswith(".mp4") for n in names) == 3
        assert all(zipped.read(n)[4:8] == b"ftyp" for n in names if n.endswith(".mp4"))
