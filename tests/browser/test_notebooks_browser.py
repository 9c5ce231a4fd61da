"""The shipped notebooks in a real JupyterLab: every cell runs with live widgets, on the local preview server with
nothing configured (nbval checks their text outputs; this checks what a reader sees)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .harness import JupyterServer, open_notebook, run_all, screenshot, set_theme

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("name", ["01-quickstart", "02-prompt-sweeps"])
def test_a_shipped_notebook_runs_live_in_jupyterlab(
    name: str, start_jupyter: Callable[..., JupyterServer], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SORA_NB_", "OPENAI_"))}
    env["SORA_NB_CACHE_DIR"] = str(tmp_path / "cache")  # a newcomer's machine: nothing configured, nothing cached
    jupyter = start_jupyter("lab", env=env)
    path = Path(shutil.copy(NOTEBOOKS / f"{name}.ipynb", Path(jupyter.root_dir) / f"{name}.ipynb"))
    page = new_page(viewport={"width": 1280, "height": 1100})
    open_notebook(page, jupyter, path)
    run_all(page, timeout_ms=240_000)
    cards = page.locator(".sora-card, .sora-g-card")  # players and gallery cards
    expect(cards.first).to_be_visible()
    assert cards.count() >= 2
    for i in range(cards.count()):
        expect(cards.nth(i)).to_have_attribute("data-status", "completed", timeout=120_000)
    if name == "01-quickstart":
        expect(page.locator(".sora-card .sora-local", has_text="local preview").first).to_be_visible()
        video = page.locator(".sora-card video").first
        page.wait_for_function("v => v.readyState >= 3", arg=video.element_handle(), timeout=30_000)
        seek = "v => new Promise(done => { v.addEventListener('seeked', done, {once: true}); v.currentTime = 1.5; })"
        video.evaluate(seek)  # a frame from the clip (not the poster), as a reader sees it after a click
        page.wait_for_timeout(1500)  # Chromium fades its seek spinner out
        screenshot(page, "widget/finished-light.png", cards.first, animations="allow")  # the README's
        set_theme(page, "dark")
        page.wait_for_timeout(1500)
        screenshot(page, "widget/finished-dark.png", cards.first, animations="allow")
        set_theme(page, "light")
    cards.first.scroll_into_view_if_needed()
    screenshot(page, f"notebook-{name}.png", animations="allow")
