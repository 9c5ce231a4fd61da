"""The class relay's teacher's page in Chromium: each student's spend, jobs and posters, behind the admin token."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from sora_nb.server import ServerHandle, start
from sora_nb.server.relay.settings import UPSTREAM_KEY_ENV, RelayConfig
from sora_nb.server.relay.storage import SqliteStorage
from sora_nb.server.relay.users import add_user
from tests.helpers import wait_for

from .harness import screenshot

pytestmark = pytest.mark.browser
KEY = "sk-upstream-for-the-browser-test"


@pytest.fixture
def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServerHandle, dict[str, str]]]:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, KEY)
    storage = SqliteStorage(tmp_path / "relay")
    tokens = {n: add_user(storage, n, budget=1.2, admin=False) for n in ("amara", "bruno", "chen")}
    tokens["teacher"] = add_user(storage, "teacher", budget=None, admin=True)
    storage.close()
    with start(speed=50, data_dir=tmp_path / "up", key=KEY) as upstream:
        config = RelayConfig(upstream=upstream.base_url, poll_interval=0.05)
        with start(engine="relay", relay=config, data_dir=tmp_path / "relay") as handle:
            yield handle, tokens


def test_the_admin_page_shows_spend_jobs_and_posters(
    relay: tuple[ServerHandle, dict[str, str]], new_page: Callable[..., Page]
) -> None:
    handle, tokens = relay
    prompts = {"amara": ["a fox in snow", "a tide pool"], "bruno": ["a fox in snow"], "chen": ["a city at night"]}
    for name, asked in prompts.items():
        with httpx.Client(base_url=handle.base_url, headers={"Authorization": f"Bearer {tokens[name]}"}) as c:
            for prompt in asked:
                wait_for(c, c.post("/videos", json={"prompt": prompt}).json()["id"])
    page = new_page(viewport={"width": 1100, "height": 520})
    page.goto(handle.url + "/admin")
    expect(page.locator("#token")).to_be_visible()  # no token: the page asks for one and shows nothing
    page.fill("#token", tokens["amara"])
    page.click("#login button")
    expect(page.locator("#error")).to_contain_text("teacher's view")
    page.goto(handle.url + "/admin#token=" + tokens["teacher"])
    expect(page).to_have_url(handle.url + "/admin")  # the token is taken out of the address bar at once
    amara = page.locator('tr[data-user="amara"]')
    expect(amara).to_contain_text("$0.80")
    expect(page.locator('tr[data-user="bruno"] td').nth(1)).to_have_text("$0.00")  # his fox was shared
    expect(page.locator('tr[data-user="bruno"] td').nth(8)).to_have_text("1")
    expect(page.locator("#summary")).to_contain_text("3 upstream jobs")
    posters = page.locator('tr[data-user="amara"] img')
    expect(posters).to_have_count(2)
    page.wait_for_function("[...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)")
    assert all(src.startswith("blob:") for src in posters.evaluate_all("els => els.map(e => e.src)"))
    screenshot(page, "relay-admin")
    if os.environ.get("SORA_NB_SCREENSHOT_DOCS"):
        page.screenshot(path=str(Path(__file__).parents[2] / "docs/images/relay-admin.png"))
