"""Sweeps, templates, the gallery, history and export, against the real local server."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import sora_nb
from sora_nb.errors import InvalidRequestError
from sora_nb.server import ServerHandle
from sora_nb.sweeps import differing, expand, label
from tests.helpers import peak_active

Configured = Callable[..., ServerHandle]


def test_expand_product_zip_templates_and_labels() -> None:
    product = expand(["a fox", "an owl", "a cat"], model=["sora-2", "sora-2-pro"], seconds=[4, 8], size="1280x720")
    assert len(product) == 12 and all(r["size"] == "1280x720" for r in product)
    keys = differing(product)
    assert keys == ["prompt", "model", "seconds"]
    assert label(product[0], keys) == "a fox · model=sora-2 · seconds=4"
    paired = expand(["a", "b"], seconds=[4, 8], zip=True)
    assert [(r["prompt"], r["seconds"]) for r in paired] == [("a", 4), ("b", 8)]
    with pytest.raises(InvalidRequestError, match="one length"):
        expand(["a", "b"], seconds=[4, 8, 12], zip=True)
    templated = expand("a {animal} in {place}", animal=["fox", "owl"], place=["snow", "rain"])
    assert [r["prompt"] for r in templated] == ["a fox in snow", "a fox in rain", "a owl in snow", "a owl in rain"]
    assert differing(templated) == ["animal", "place"] and "animal" not in templated[0]
    with pytest.raises(InvalidRequestError, match="place"):
        expand("a {animal} in {place}", animal=["fox"])


def test_sweep_runs_within_the_limit_and_reruns_free(configured: Configured) -> None:
    handle = configured(speed=4.0)
    with peak_active(handle) as peak:
        gallery = sora_nb.sweep(["a fox", "an owl", "a cat"], seconds=[4, 8], seed=[1, 2], max_concurrency=3)
        paths = gallery.wait(timeout=240)
    assert len(gallery) == 12 and all(p is not None and p.is_file() for p in paths)
    assert 1 <= peak[0] <= 3 and len(handle.app.store.jobs()) == 12
    labels = [card["label"] for card in gallery.cards]
    assert labels[0] == "a fox · seconds=4 · seed=1" and len(set(labels)) == 12
    assert gallery.counts["done"] == 12 and gallery.local is False
    assert gallery.estimated_usd == pytest.approx(12 * 0.1 * 6) and gallery.spent_usd == pytest.approx(7.2)
    again = sora_nb.sweep(["a fox", "an owl", "a cat"], seconds=[4, 8], seed=[1, 2])
    assert again.wait(timeout=30) == paths
    assert len(handle.app.store.jobs()) == 12 and all(job.cached for job in again.jobs)


def test_budget_smaller_than_the_sweep_sends_nothing(configured: Configured) -> None:
    handle = configured()
    sora_nb.configure(budget_usd=0.3)
    gallery = sora_nb.sweep(["one", "two", "three", "four"], seconds=4)
    assert gallery.estimated_usd == pytest.approx(1.6)
    paths = gallery.wait(timeout=60)
    assert paths == [None] * 4  # every 4 s job costs $0.40, over the $0.30 budget
    assert handle.app.store.jobs() == []
    assert all("budget" in card["error"] for card in gallery.cards)


def test_history_search_order_and_export(configured: Configured, tmp_path: Path) -> None:
    configured()
    for prompt in ("a red kite", "a blue kite", "a green boat"):
        sora_nb.submit(prompt).result(timeout=60)
        time.sleep(0.01)
    everything = sora_nb.history()
    assert [row["prompt"] for row in everything.records()] == ["a green boat", "a blue kite", "a red kite"]
    kites = sora_nb.history("KITE")
    assert [row["prompt"] for row in kites.records()] == ["a blue kite", "a red kite"]
    assert len(sora_nb.history(since=time.time() + 60)) == 0
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
