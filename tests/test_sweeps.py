"""Sweeps, templates and history (the verbs that make galleries), against the real local server."""

from __future__ import annotations

import time
from collections.abc import Callable

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


def test_history_lists_the_cache_newest_first_and_searches_prompts(configured: Configured) -> None:
    configured()
    for prompt in ("a red kite", "a blue kite", "a green boat"):
        sora_nb.submit(prompt).result(timeout=60)
        time.sleep(0.01)
    everything = sora_nb.history()
    assert [row["prompt"] for row in everything.records()] == ["a green boat", "a blue kite", "a red kite"]
    kites = sora_nb.history("KITE")
    assert [row["prompt"] for row in kites.records()] == ["a blue kite", "a red kite"]
    assert len(sora_nb.history(since=time.time() + 60)) == 0
