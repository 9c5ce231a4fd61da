"""Honest progress in a real JupyterLab: a job on an engine without real percentages (the aquiles dialect)
shows an indeterminate bar, and its ETA, once there are past jobs, says where it comes from."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from sora_nb.server import ServerHandle

from .harness import JupyterServer, open_notebook, output_locator, run_cell, screenshot, set_theme, write_notebook
from .test_widget_browser import UI, card, sora_jupyter  # noqa: F401  (sora_jupyter: a fixture)

pytestmark = pytest.mark.browser

CELLS = [
    "import sora_nb\nsora_nb.configure(provider='aquiles')\n"
    "first = sora_nb.generate('a lighthouse in fog', size='1280x720', seconds=8)\nfirst",
    "second = sora_nb.generate('a lighthouse at dawn', size='1280x720', seconds=8)\nsecond",
    "g = sora_nb.sweep('a lighthouse {when}', when=['at noon'], size='1280x720', seconds=8)\ng",
]


def test_no_real_percentage_shows_a_busy_bar_then_an_eta_from_past_jobs(
    sora_jupyter: Callable[..., tuple[ServerHandle, JupyterServer]],  # noqa: F811
    new_page: Callable[..., Page],
) -> None:
    _, jupyter = sora_jupyter("lab", dialect="aquiles", speed=1.0)
    page = new_page()
    open_notebook(page, jupyter, write_notebook(jupyter.root_dir, "honest.ipynb", CELLS))

    run_cell(page, 0)
    first = card(page, 0)
    expect(first).to_have_attribute("data-status", "in_progress", timeout=UI)
    bar = first.locator(".sora-bar")
    expect(bar).to_have_class("sora-bar sora-indeterminate")
    expect(bar).to_have_attribute("aria-busy", "true")
    expect(bar).not_to_have_attribute("aria-valuenow", "0")
    assert bar.get_attribute("aria-valuenow") is None  # no number for a screen reader to read out
    expect(first.locator(".sora-pct")).to_have_text("")
    expect(first.locator(".sora-eta")).to_have_text("")  # no past jobs: elapsed only, no ETA
    fill = bar.locator(".sora-fill")
    assert fill.evaluate("f => getComputedStyle(f).animationName") == "sora-sweep"
    page.emulate_media(reduced_motion="reduce")
    assert fill.evaluate("f => getComputedStyle(f).animationName") == "none"  # a still, striped bar
    screenshot(page, "widget/indeterminate-reduced-motion.png", selector=first)
    page.emulate_media(reduced_motion="no-preference")
    screenshot(page, "widget/indeterminate-light.png", selector=first, animations="allow")  # mid-sweep
    expect(first).to_have_attribute("data-status", "completed", timeout=60_000)
    assert bar.get_attribute("aria-busy") is None

    run_cell(page, 1)
    second = card(page, 1)
    eta = second.locator(".sora-eta")
    expect(eta).to_contain_text("left (from 1 past job)", timeout=UI)
    expect(eta).to_have_attribute("data-source", "history")
    assert "similar past job" in (eta.get_attribute("title") or "")
    expect(second.locator(".sora-bar")).to_have_attribute("aria-busy", "true")
    screenshot(page, "widget/history-eta-light.png", selector=second, animations="allow")
    set_theme(page, "dark")
    screenshot(page, "widget/history-eta-dark.png", selector=second, animations="allow")
    set_theme(page, "light")
    expect(second).to_have_attribute("data-status", "completed", timeout=60_000)

    run_cell(page, 2)  # a gallery card says the same, in short
    tile = output_locator(page, 2).locator(".sora-g-card").first
    expect(tile.locator(".sora-g-status")).to_contain_text("left (2 past jobs)", timeout=UI)
    expect(tile.locator(".sora-bar")).to_have_class("sora-bar sora-indeterminate")
    assert tile.locator(".sora-bar").get_attribute("aria-valuenow") is None
    screenshot(page, "gallery/history-eta-light.png", selector=tile, animations="allow")
    expect(tile).to_have_attribute("data-status", "completed", timeout=60_000)
