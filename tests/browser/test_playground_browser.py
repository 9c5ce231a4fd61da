"""sora_nb.playground() in a real JupyterLab and Notebook 7: type a prompt, press Generate (Ctrl+Enter), see the
take play, make variations, compare two in sync, star one, restart the kernel and find the session again; a
lesson's locked fields and the budget's reason on a disabled button; screenshots in light and dark."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from sora_nb.server import ServerHandle

from .harness import (
    REPO_ROOT,
    JupyterServer,
    _js,
    open_notebook,
    output_locator,
    read_notebook,
    run_cell,
    save_notebook,
    screenshot,
    set_theme,
    wait_until_ready,
    write_notebook,
)

pytestmark = pytest.mark.browser

SECRET = "playground-browser-secret-5d1e"
UI = 30_000
IMAGES = REPO_ROOT / "docs" / "images"


def wait_all_completed(cards: Locator, count: int, timeout: float = 60) -> None:
    expect(cards).to_have_count(count, timeout=UI)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [cards.nth(i).get_attribute("data-status") for i in range(count)]
        if statuses == ["completed"] * count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the takes did not all complete: {statuses}")


def playing_preview(card: Locator) -> None:
    preview = card.locator("video.sora-g-video")
    expect(preview).to_have_count(1, timeout=UI)
    card.page.wait_for_function("v => v.muted && v.loop && v.readyState >= 2", arg=preview.element_handle(), timeout=UI)


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_prompt_generate_variations_compare_and_the_session_after_a_kernel_restart(
    make_server: Callable[..., ServerHandle],
    start_jupyter: Callable[..., JupyterServer],
    new_page: Callable[..., Page],
    tmp_path: Path,
    kind: str,
) -> None:
    handle = make_server(key=SECRET, speed=1.0)
    env = {
        **os.environ,
        "SORA_NB_BASE_URL": handle.base_url,
        "SORA_NB_API_KEY": SECRET,
        "SORA_NB_CACHE_DIR": str(tmp_path / "cache"),
    }
    jupyter = start_jupyter(kind, env=env)
    path = write_notebook(
        jupyter.root_dir,
        "playground.ipynb",
        [
            "import sora_nb\npg = sora_nb.playground(size='1280x720', seed=7, variations=2)\npg",
            "lesson = sora_nb.playground(session='lesson', prompt='a kite', budget_usd=0.5,\n"
            "    lock={'model': 'sora-2', 'size': '1280x720', 'seconds': 4})\nlesson",
        ],
    )
    page = new_page(viewport={"width": 1280, "height": 1100})  # the whole session in one screenshot
    open_notebook(page, jupyter, path)
    run_cell(page, 0)
    out = output_locator(page, 0)
    form = out.locator(".sora-pg")
    generate = form.get_by_role("button", name="Generate", exact=True)
    expect(generate).to_be_disabled(timeout=UI)
    expect(form.locator(".sora-pg-reason")).to_have_text("Type a prompt first.")
    prompt = form.get_by_role("textbox", name="Prompt")
    prompt.fill("a red kite over green hills")
    expect(form.locator(".sora-pg-cost")).to_contain_text("This take: $0.40", timeout=UI)  # 4 s of sora-2
    expect(generate).to_be_enabled()
    prompt.press("Tab")  # keyboard only: the fields follow the prompt in order
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Model"
    prompt.press("Control+Enter")  # the keyboard's Generate
    cards = out.locator(".sora-gallery .sora-g-card")
    wait_all_completed(cards, 1)
    playing_preview(cards.first)  # the take plays, a muted loop
    form.get_by_role("button", name="Variations", exact=True).click()
    wait_all_completed(cards, 3)
    labels = [cards.nth(i).locator(".sora-g-label").inner_text() for i in range(3)]
    assert sorted(labels) == ["#1 · seed 7", "#2 · seed 8", "#3 · seed 9"]
    assert cards.nth(2).evaluate("c => c.style.order") == "-2"  # newest first
    cards.nth(1).get_by_role("button", name="Star this take").click()
    expect(cards.nth(1).get_by_role("button", name="Star this take")).to_have_attribute("aria-pressed", "true")
    note = cards.nth(1).get_by_role("textbox", name="Note on this take")
    note.fill("the best light")
    note.press("Enter")
    for i in (0, 1):
        cards.nth(i).locator("input[type=checkbox]").check()
    out.get_by_role("button", name="Compare the selected videos side by side").click()
    videos = out.locator(".sora-g-compare video")
    expect(videos).to_have_count(2, timeout=UI)
    for i in range(2):
        page.wait_for_function("v => v.readyState >= 2", arg=videos.nth(i).element_handle(), timeout=UI)
    videos.nth(0).evaluate("v => v.play()")
    page.wait_for_function("v => !v.paused", arg=videos.nth(1).element_handle(), timeout=10_000)
    videos.nth(0).evaluate("v => v.pause()")
    page.wait_for_function("v => v.paused", arg=videos.nth(1).element_handle(), timeout=10_000)
    if kind == "lab":
        screenshot(page, IMAGES / "playground-light.png", selector=out, animations="allow")
    assert len(handle.app.store.jobs()) == 3

    run_cell(page, 1)  # a lesson: locked fields read-only, and the budget's reason on Variations
    lesson = output_locator(page, 1).locator(".sora-pg")
    expect(lesson.get_by_label("Model", exact=True)).to_be_disabled(timeout=UI)
    expect(lesson.get_by_label("Size", exact=True)).to_be_disabled()
    expect(lesson.get_by_role("button", name="Generate", exact=True)).to_be_enabled()
    expect(lesson.get_by_role("button", name="Variations", exact=True)).to_be_disabled()
    expect(lesson.locator(".sora-pg-reason")).to_contain_text("4 variations would cost $1.60")
    picture = tmp_path / "start.png"
    Image.new("RGB", (1280, 720), (30, 120, 200)).save(picture)
    lesson.locator("input[type=file]").set_input_files(str(picture))  # the bytes go as a binary message
    expect(lesson.locator(".sora-pg-image-name")).to_have_text("Starts from start.png", timeout=UI)
    expect(lesson.locator(".sora-pg-notice")).to_contain_text("Takes start from start.png")
    if kind == "lab":
        set_theme(page, "dark")
        screenshot(page, IMAGES / "playground-lesson-dark.png", selector=output_locator(page, 1), animations="allow")
        set_theme(page, "light")

    save_notebook(page)  # a saved notebook stays small: no video bytes and no key in the widget state
    saved = (jupyter.root_dir / "playground.ipynb").read_text()
    assert SECRET not in saved and "AAAAIGZ0eXA" not in saved and len(saved) < 400_000
    assert read_notebook(path)["cells"][0]["outputs"]

    page.evaluate(_js("return findPanel().sessionContext.restartKernel();"))
    wait_until_ready(page)
    run_cell(page, 0)  # a new kernel: the session comes back from the cache
    out = output_locator(page, 0)
    cards = out.locator(".sora-gallery .sora-g-card")
    wait_all_completed(cards, 3)
    restored = cards.nth(1)
    expect(restored.get_by_role("button", name="Star this take")).to_have_attribute("aria-pressed", "true")
    expect(restored.get_by_role("textbox", name="Note on this take")).to_have_value("the best light")
    playing_preview(cards.first)
    form = out.locator(".sora-pg")
    form.get_by_role("textbox", name="Prompt").fill("a red kite over green hills")
    expect(form.locator(".sora-pg-cost")).to_contain_text("re-attaches", timeout=UI)
    form.get_by_role("button", name="Generate", exact=True).click()  # the same form: re-attached, not paid
    expect(form.locator(".sora-pg-notice")).to_contain_text("re-attached to it, nothing paid", timeout=UI)
    expect(cards).to_have_count(3)
    assert len(handle.app.store.jobs()) == 3
