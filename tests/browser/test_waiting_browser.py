"""A job a busy engine keeps queued says why, in a real JupyterLab: against the aquiles dialect (one job at a
time), the second of two jobs and a sweep's waiting cards show "waiting: the engine at ... runs 1 job at a time"
under their status, in a polite live region, and the words go once the engine takes the job."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from sora_nb.server import ServerHandle

from .harness import JupyterServer, open_notebook, output_locator, run_cell, screenshot, set_theme, write_notebook
from .test_widget_browser import UI, sora_jupyter  # noqa: F401  (sora_jupyter: a fixture)

pytestmark = pytest.mark.browser

WAITING = "runs 1 job at a time"
CELLS = [
    "import sora_nb\nsora_nb.configure(provider='aquiles')\n"
    "a = sora_nb.generate('a lighthouse in fog', seconds=4)\nb = sora_nb.generate('a lighthouse at dawn', seconds=4)\n"
    "display(a)\nb",
    "g = sora_nb.sweep('a lighthouse {when}', when=['at noon', 'at dusk', 'at night'], seconds=4)\ng",
]


def test_a_job_waiting_for_a_busy_engine_says_why_until_the_engine_takes_it(
    sora_jupyter: Callable[..., tuple[ServerHandle, JupyterServer]],  # noqa: F811
    new_page: Callable[..., Page],
) -> None:
    _, jupyter = sora_jupyter("lab", dialect="aquiles", speed=2.0)
    page = new_page()
    open_notebook(page, jupyter, write_notebook(jupyter.root_dir, "waiting.ipynb", CELLS))

    run_cell(page, 0)
    jobs = output_locator(page, 0).locator(".sora-card")
    waiting = jobs.locator(".sora-waiting", has_text=WAITING)
    expect(waiting).to_have_count(1, timeout=UI)  # one renders, the other waits for it
    expect(waiting).to_have_attribute("aria-live", "polite")
    expect(waiting).to_have_text(re.compile(r"^waiting: the engine at 127\.0\.0\.1:\d+ runs 1 job at a time$"))
    card = jobs.filter(has=page.locator(".sora-waiting", has_text=WAITING))
    expect(card).to_have_attribute("data-status", "queued")
    screenshot(page, "widget/waiting-light.png", selector=output_locator(page, 0), animations="allow")
    set_theme(page, "dark")
    screenshot(page, "widget/waiting-dark.png", selector=output_locator(page, 0), animations="allow")
    set_theme(page, "light")
    expect(jobs.nth(0)).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(jobs.nth(1)).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(jobs.locator(".sora-waiting", has_text=WAITING)).to_have_count(0)

    run_cell(page, 1)  # a gallery card says it under its status line
    tiles = output_locator(page, 1).locator(".sora-g-card")
    expect(tiles.locator(".sora-g-waiting", has_text=WAITING).first).to_be_visible(timeout=UI)
    screenshot(page, "gallery/waiting-light.png", selector=output_locator(page, 1), animations="allow")
    for index in range(3):
        expect(tiles.nth(index)).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(tiles.locator(".sora-g-waiting", has_text=WAITING)).to_have_count(0)
