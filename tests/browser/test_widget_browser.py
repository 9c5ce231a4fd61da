"""The VideoJob widget in a real JupyterLab / Notebook 7 in headless Chromium, against the real local server."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from sora_nb.server import ServerHandle

from .harness import (
    JupyterServer,
    cell_output_text,
    open_notebook,
    output_locator,
    read_notebook,
    reload,
    run_cell,
    save_notebook,
    screenshot,
    set_theme,
    write_notebook,
)

pytestmark = pytest.mark.browser

SECRET = "browser-test-secret-key-9f3a"
UI = 30_000


@pytest.fixture
def sora_jupyter(
    make_server: Callable[..., ServerHandle], start_jupyter: Callable[..., JupyterServer], tmp_path: Path
) -> Callable[..., tuple[ServerHandle, JupyterServer]]:
    """A Videos server with a distinctive key, and a Jupyter server whose kernels are configured for it by env."""

    def make(kind: str = "lab", **server_options: Any) -> tuple[ServerHandle, JupyterServer]:
        server_options.setdefault("speed", 0.7)
        handle = make_server(key=SECRET, **server_options)
        env = {
            **os.environ,
            "SORA_NB_BASE_URL": handle.base_url,
            "SORA_NB_API_KEY": SECRET,
            "SORA_NB_CACHE_DIR": str(tmp_path / f"cache-{kind}"),
        }
        return handle, start_jupyter(kind, env=env)

    return make


def card(page: Page, index: int) -> Locator:
    return output_locator(page, index).locator(".sora-card").first


def video_facts(page: Page, index: int) -> dict[str, float]:
    return video_facts_of(card(page, index))


def video_facts_of(widget: Locator) -> dict[str, float]:
    page = widget.page
    video = widget.locator("video")
    expect(video).to_be_visible(timeout=UI)
    page.wait_for_function("el => el.readyState >= 2", arg=video.element_handle(), timeout=UI)
    facts: dict[str, float] = video.evaluate(
        "v => ({ready: v.readyState, duration: v.duration, width: v.videoWidth, height: v.videoHeight})"
    )
    return facts


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_generate_runs_live_and_plays(
    sora_jupyter: Callable[..., tuple[ServerHandle, JupyterServer]], new_page: Callable[..., Page], kind: str
) -> None:
    _, jupyter = sora_jupyter(kind)
    path = write_notebook(
        jupyter.root_dir,
        "live.ipynb",
        [
            "import sora_nb\njob = sora_nb.generate('a red fox running through snow', size='1280x720', seconds=4)\njob",
        ],
    )
    page = new_page()
    open_notebook(page, jupyter, path)
    started = time.monotonic()
    run_cell(page, 0)
    returned = time.monotonic() - started
    widget = card(page, 0)
    expect(widget).to_be_visible(timeout=UI)
    status = widget.get_attribute("data-status")
    assert status in ("pending", "queued", "in_progress"), status  # the cell came back while the job runs
    assert returned < 4.0
    bar = widget.locator(".sora-bar")
    values: list[int] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and widget.get_attribute("data-status") != "completed":
        now = bar.get_attribute("aria-valuenow")
        if now is not None and (not values or int(now) != values[-1]):
            values.append(int(now))
        if kind == "lab" and len(values) == 3:
            screenshot(page, "widget/running-light.png", selector=widget)
        time.sleep(0.1)
    assert len(values) >= 3 and values == sorted(values), values
    expect(widget).to_have_attribute("data-status", "completed", timeout=UI)
    facts = video_facts(page, 0)
    assert facts["ready"] >= 2 and abs(facts["duration"] - 4.0) < 0.1
    assert (facts["width"], facts["height"]) == (1280, 720)
    expect(widget.locator(".sora-chip.sora-backend")).to_have_text("127.0.0.1")
    download = widget.locator("a.sora-button[download]")
    expect(download).to_have_attribute("download", f"{widget.locator('.sora-id').inner_text()}.mp4")
    reload(page)  # the kernel lives on: the view asks for the video again
    facts = video_facts(page, 0)
    assert facts["ready"] >= 2 and (facts["width"], facts["height"]) == (1280, 720)
    if kind == "lab":  # the remix box opens a new live widget below this one
        widget = card(page, 0)
        widget.locator("input.sora-input").fill("the same fox at night")
        widget.locator("button", has_text="Remix").click()
        remixed = output_locator(page, 0).locator(".sora-card").nth(1)
        expect(remixed.locator(".sora-prompt")).to_have_text("the same fox at night", timeout=UI)
        expect(remixed).to_have_attribute("data-status", "completed", timeout=60_000)
        assert video_facts_of(remixed)["ready"] >= 2


def test_a_widget_shown_twice_fetches_its_video_once_and_both_views_play(
    sora_jupyter: Callable[..., tuple[ServerHandle, JupyterServer]], new_page: Callable[..., Page]
) -> None:
    """The messages and files of a widget live once per model (anywidget's initialize), not once per view."""
    _, jupyter = sora_jupyter("lab", speed=2.0)
    cells = [
        "import sora_nb\nfrom IPython.display import display\n"
        "w = sora_nb.generate('one widget in two places', size='1280x720', seconds=4)\n"
        "asked = []  # each time a front end asks the kernel for the video\n"
        "send_video = w.send_video\n"
        "w.send_video = lambda: asked.append(send_video()) or asked[-1]\n"
        "display(w)\ndisplay(w)",
        "print('asked', len(asked), 'chunks', asked)",
    ]
    path = write_notebook(jupyter.root_dir, "twice.ipynb", cells)
    page = new_page()
    open_notebook(page, jupyter, path)
    run_cell(page, 0)
    views = output_locator(page, 0).locator(".sora-card")
    expect(views).to_have_count(2, timeout=UI)
    for i in range(2):
        expect(views.nth(i)).to_have_attribute("data-status", "completed", timeout=60_000)
    for i in range(2):
        facts = video_facts_of(views.nth(i))
        assert facts["ready"] >= 2 and (facts["width"], facts["height"]) == (1280, 720), (i, facts)
    run_cell(page, 1)
    assert cell_output_text(page, 1) == "asked 1 chunks [1]"  # one request, one 4 MiB chunk, for both views


def test_cancel_failure_and_retry(
    sora_jupyter: Callable[..., tuple[ServerHandle, JupyterServer]], new_page: Callable[..., Page]
) -> None:
    handle, jupyter = sora_jupyter("lab", speed=0.1)
    path = write_notebook(
        jupyter.root_dir,
        "errors.ipynb",
        [
            "import sora_nb\nslow = sora_nb.generate('a very slow sunrise')\nslow",
            "bad = sora_nb.generate('a moderation-test scene')\nbad",
        ],
    )
    page = new_page()
    open_notebook(page, jupyter, path)
    run_cell(page, 0)
    slow = card(page, 0)
    expect(slow.locator("button", has_text="Cancel")).to_be_visible(timeout=UI)
    set_theme(page, "dark")
    expect(slow).to_have_attribute("data-status", "in_progress", timeout=UI)
    screenshot(page, "widget/running-dark.png", selector=slow)
    set_theme(page, "light")
    slow.locator("button", has_text="Cancel").click()
    expect(slow).to_have_attribute("data-status", "cancelled", timeout=UI)
    deadline = time.monotonic() + 10
    while handle.app.store.jobs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handle.app.store.jobs() == []  # the server job was deleted, not left running

    run_cell(page, 1)
    bad = card(page, 1)
    expect(bad).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(bad.locator(".sora-error-code")).to_have_text("moderation_blocked")
    expect(bad.locator(".sora-error-message")).to_contain_text("Rephrase the prompt")
    expect(bad.locator(".sora-error-hint")).to_be_hidden()  # the server's message already says what to do
    assert bad.locator(".sora-failed").inner_text().lower().count("rephrase") == 1  # advice shown once
    screenshot(page, "widget/failed-light.png", selector=bad)
    assert len(handle.app.store.jobs()) == 1
    bad.locator("button", has_text="Retry").click()
    deadline = time.monotonic() + 20
    while len(handle.app.store.jobs()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(handle.app.store.jobs()) == 2
    expect(bad).to_have_attribute("data-status", "failed", timeout=60_000)


def test_a_notebook_saved_from_jupyterlab_after_logs_sweeps_and_errors_holds_no_key(
    sora_jupyter: Callable[..., tuple[ServerHandle, JupyterServer]], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    """Issue 7's secrets check in a real JupyterLab: DEBUG logging into the outputs, a widget, a sweep's gallery,
    two errors with tracebacks (one from a wrong key); the saved file and the cache hold no key."""
    handle, jupyter = sora_jupyter("lab", speed=2.0)
    cells = [
        "import logging, os\nimport sora_nb\nlogging.basicConfig(level=logging.DEBUG, force=True)",
        "w = sora_nb.generate('a logged secret', seconds=4)\nw",
        "g = sora_nb.sweep('a {thing} at night', thing=['kite', 'boat'], seconds=4)\ng",
        "w.result(timeout=60); g.wait(timeout=120)\nsora_nb.submit('bad', size='1x1').result(timeout=30)",
        "sora_nb.configure(api_key='a-wrong-key')\nsora_nb.submit('refused').result(timeout=30)",
    ]
    path = write_notebook(jupyter.root_dir, "logged.ipynb", cells)
    page = new_page()
    open_notebook(page, jupyter, path)
    for i in range(3):
        run_cell(page, i)
    run_cell(page, 3, timeout_ms=180_000, check=False)
    run_cell(page, 4, check=False)
    expect(card(page, 1)).to_have_attribute("data-status", "completed", timeout=60_000)
    save_notebook(page)
    raw = Path(path).read_bytes()
    nb = read_notebook(path)
    errors = [o["ename"] for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == ["InvalidRequestError", "AuthenticationError"]
    assert b"DEBUG" in raw and nb.metadata.get("widgets"), "no log or no widget state was saved"
    assert SECRET.encode() not in raw
    files = [f for f in (tmp_path / "cache-lab").rglob("*") if f.is_file()]
    assert files and all(SECRET.encode() not in f.read_bytes() for f in files)
    assert handle.app.cdn_rejected_headers == []


def test_saved_notebook_is_small_and_keyless(
    sora_jupyter: Callable[..., tuple[ServerHandle, JupyterServer]], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    _, jupyter = sora_jupyter("lab", speed=2.0)
    cells = [f"import sora_nb\nv{i} = sora_nb.generate('saved clip number {i}', seconds=4)\nv{i}" for i in range(3)]
    path = write_notebook(jupyter.root_dir, "saved.ipynb", cells)
    page = new_page()
    open_notebook(page, jupyter, path)
    for i in range(3):
        run_cell(page, i)
    for i in range(3):
        expect(card(page, i)).to_have_attribute("data-status", "completed", timeout=60_000)
        assert video_facts(page, i)["ready"] >= 2
    save_notebook(page)
    raw = Path(path).read_bytes()
    assert len(raw) < 200_000, len(raw)
    assert SECRET.encode() not in raw
    nb = read_notebook(path)
    assert nb.metadata.get("widgets"), "widget state was not saved"
    records = list((tmp_path / "cache-lab").rglob("*.json"))
    assert records and all(SECRET.encode() not in f.read_bytes() for f in records)
