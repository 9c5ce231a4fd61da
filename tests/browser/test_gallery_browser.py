"""The Gallery in a real JupyterLab: live cards, and the compare view playing two videos in sync."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sora_nb.server import ServerHandle

from .harness import JupyterServer, open_notebook, output_locator, run_cell, screenshot, write_notebook

pytestmark = pytest.mark.browser


def test_gallery_cards_update_live_and_compare_plays_in_sync(
    make_server: Callable[..., ServerHandle],
    start_jupyter: Callable[..., JupyterServer],
    new_page: Callable[..., Page],
    tmp_path: Path,
) -> None:
    handle = make_server(speed=1.0)
    env = {
        **os.environ,
        "SORA_NB_BASE_URL": handle.base_url,
        "SORA_NB_API_KEY": handle.key,
        "SORA_NB_CACHE_DIR": str(tmp_path / "cache"),
    }
    jupyter = start_jupyter("lab", env=env)
    path = write_notebook(
        jupyter.root_dir,
        "gallery.ipynb",
        [
            "import sora_nb\n"
            "g = sora_nb.sweep('a {animal} at dawn', animal=['fox', 'owl'], seed=[1, 2], size='1280x720')\ng",
            "h = sora_nb.history('fox')\nh",
        ],
    )
    page = new_page()
    open_notebook(page, jupyter, path)
    run_cell(page, 0)
    gallery = output_locator(page, 0).locator(".sora-gallery")
    cards = gallery.locator(".sora-g-card")
    expect(cards).to_have_count(4, timeout=30_000)
    expect(cards.first.locator(".sora-g-label")).to_have_text("animal=fox · seed=1")
    cancel_all = gallery.locator("button", has_text="Cancel all")
    expect(cancel_all).to_be_enabled()  # jobs are still queued or running
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = [cards.nth(i).get_attribute("data-status") for i in range(4)]
        seen.update(statuses)
        if all(s == "completed" for s in statuses):
            break
        time.sleep(0.1)
    assert statuses == ["completed"] * 4 and len(seen) >= 2, seen  # the cards moved through states live
    expect(gallery.locator(".sora-g-stats")).to_contain_text("4 done")
    expect(cancel_all).to_be_disabled()  # nothing left to cancel
    preview = cards.nth(3).locator("video.sora-g-video")  # done cards of a sweep preview themselves, muted
    expect(preview).to_have_count(1, timeout=20_000)
    page.wait_for_function("v => v.muted && v.loop && v.readyState >= 2", arg=preview.element_handle(), timeout=20_000)
    cards.nth(0).locator("input[type=checkbox]").check()
    cards.nth(1).locator("input[type=checkbox]").check()
    gallery.locator("button", has_text="Compare selected").click()
    videos = gallery.locator(".sora-g-compare video")
    expect(videos).to_have_count(2, timeout=20_000)
    for i in range(2):
        page.wait_for_function("v => v.readyState >= 2", arg=videos.nth(i).element_handle(), timeout=20_000)
    videos.nth(0).evaluate("v => v.play()")
    page.wait_for_function("v => !v.paused", arg=videos.nth(1).element_handle(), timeout=10_000)
    videos.nth(0).evaluate("v => v.pause()")
    page.wait_for_function("v => v.paused", arg=videos.nth(1).element_handle(), timeout=10_000)
    videos.nth(0).evaluate("v => { v.currentTime = 2.0; }")
    page.wait_for_function(
        "v => Math.abs(v.currentTime - 2.0) < 0.1", arg=videos.nth(1).element_handle(), timeout=10_000
    )
    screenshot(page, "gallery/compare-light.png", selector=gallery)
    cards.nth(0).locator("button", has_text="Open").click()  # the full player, with its remix box, below
    player = output_locator(page, 0).locator(".sora-card")
    expect(player).to_have_count(1, timeout=20_000)
    expect(player).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(player.locator(".sora-prompt")).to_have_text("a fox at dawn")
    run_cell(page, 1)  # history: no autoplay; posters load lazily, on request, for the cards on screen
    history = output_locator(page, 1).locator(".sora-gallery .sora-g-card")
    expect(history).to_have_count(2, timeout=20_000)
    history.first.scroll_into_view_if_needed()  # lazy: only cards on screen ask for their poster
    poster = history.first.locator("img.sora-g-poster")
    page.wait_for_function(
        "img => img.src.startsWith('blob:') && img.naturalWidth > 0", arg=poster.element_handle(), timeout=15_000
    )
    assert history.first.locator("video").count() == 0


def test_exported_contact_sheet_plays_in_chromium(
    configured: Callable[..., ServerHandle], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    import sora_nb

    configured()
    for prompt in ("an exported kite", "an exported boat"):
        sora_nb.submit(prompt, size="1280x720").result(timeout=60)
    page_path = sora_nb.history().export(tmp_path / "share" / "index.html")
    page = new_page()
    page.goto(page_path.as_uri())
    videos = page.locator("video")
    expect(videos).to_have_count(2)
    for i in range(2):
        handle = videos.nth(i).element_handle()
        videos.nth(i).evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("v => v.readyState >= 2 && v.videoWidth === 1280", arg=handle, timeout=20_000)
    expect(page.locator("figcaption").first).to_contain_text("an exported boat")
