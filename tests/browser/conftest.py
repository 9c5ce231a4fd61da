"""Fixtures for tests that run notebooks in a real JupyterLab / Notebook 7 inside headless Debian Chromium.

Fixtures (see ``harness.py`` for the page helpers):

* ``jupyter_server`` -- a running server, shared per kind by the whole session. Lab by default; run a test in both
  front ends with ``@pytest.mark.parametrize("jupyter_server", SERVER_KINDS, indirect=True)``. After each test its
  kernels are shut down and its user settings (theme, …) reset.
* ``start_jupyter(kind="lab", *, env=None, root_dir=None, settings=None, extra_args=())`` -- a dedicated server for
  one test, e.g. with its own environment (``env=None`` copies ``os.environ`` at call time); stopped afterwards.
* ``browser`` -- session-wide Chromium (``/usr/bin/chromium``, headless).
* ``page`` -- a fresh context + page per test (1280x900); ``browser_context_args`` gives its options, override it
  (or parametrize it indirectly) for e.g. ``{"color_scheme": "dark"}``.
* ``new_page(**context_options)`` -- more pages, each in its own context.
* ``notebook_name`` -- a file-name-safe unique name for this test's notebook.

All tests under ``tests/browser`` get the ``browser`` marker (``-m "not browser"`` deselects them). They are skipped
when /usr/bin/chromium is missing, except under CI (``CI`` set), where that is an error.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEFAULT_TIMEOUT_MS,
    SCREENSHOTS_DIR,
    SERVER_KINDS,
    VIEWPORT,
    JupyterServer,
    ServerKind,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

HERE = Path(__file__).resolve().parent


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: runs notebooks in real JupyterLab / Notebook 7 in headless Chromium (tests/browser)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chromium_missing = not Path(CHROMIUM).exists()
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run browser tests"
    )
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
        if item.get_closest_marker("browser") and chromium_missing and not _in_ci():
            item.add_marker(skip)


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


def _safe_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name).strip("_")[:80] or "test"


# ------------------------------------------------------------------ Jupyter servers
class ServerPool:
    """Starts one server per kind on first use and stops them all at the end of the session."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: dict[str, JupyterServer] = {}

    def get(self, kind: ServerKind) -> JupyterServer:
        if kind not in SERVER_KINDS:
            raise ValueError(f"jupyter_server param must be one of {SERVER_KINDS}, not {kind!r}")
        if kind not in self.servers:
            self.servers[kind] = JupyterServer.start(kind, self.base / kind)
        return self.servers[kind]

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


@pytest.fixture(scope="session")
def jupyter_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("jupyter-roots"))
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def jupyter_server(request: pytest.FixtureRequest, jupyter_servers: ServerPool) -> Iterator[JupyterServer]:
    """The session's server of kind ``request.param`` ("lab" unless parametrized indirectly)."""
    kind: ServerKind = getattr(request, "param", "lab")
    server = jupyter_servers.get(kind)
    yield server
    if _failed(request):
        print(f"--- jupyter {kind} server log (tail) ---\n{server.log_tail()}")
    server.shutdown_kernels()
    server.reset_settings()


@pytest.fixture
def start_jupyter(request: pytest.FixtureRequest) -> Iterator[Callable[..., JupyterServer]]:
    """Factory for dedicated servers (own root dir, env, settings); all are stopped after the test."""
    started: list[JupyterServer] = []
    roots: list[Path] = []

    def start(
        kind: ServerKind = "lab",
        *,
        env: dict[str, str] | None = None,
        root_dir: Path | str | None = None,
        settings: dict[str, Any] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> JupyterServer:
        if root_dir is None:
            root_dir = Path(tempfile.mkdtemp(prefix=f"jupyter-{kind}-root-"))
            roots.append(root_dir)
        server = JupyterServer.start(kind, root_dir, env=env, settings=settings, extra_args=extra_args)
        started.append(server)
        return server

    yield start
    for server in started:
        if _failed(request):
            print(f"--- jupyter {server.kind} server log (tail) ---\n{server.log_tail()}")
        server.stop()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ browser
# Per module, not per session: while Playwright's sync API is started, its event loop counts as running in the
# main thread, so a test of another file that calls asyncio.run() in the same worker would fail
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        # only reached under CI (collection skips otherwise): a missing browser is a broken CI machine
        pytest.fail(f"{CHROMIUM} is missing; .ci/run should have installed Debian's chromium", pytrace=False)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    """Options for the ``page`` fixture's browser context (override, or parametrize indirectly)."""
    return {}


@pytest.fixture
def new_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Callable[..., Page]]:
    """Factory: ``new_page(color_scheme="dark", viewport=..., **context_options)`` -> a page in a fresh context.

    On test failure every page is screenshotted to artifacts/screenshots/failures/ and its console errors printed.
    """
    pages: list[tuple[Page, list[str]]] = []

    def make(**options: Any) -> Page:
        options.setdefault("viewport", dict(VIEWPORT))
        if options.get("color_scheme") is None:
            options.pop("color_scheme", None)
        context = browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                errors.append(f"console.error: {msg.text}")

        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on("console", on_console)
        pages.append((page, errors))
        return page

    yield make
    failed = _failed(request)
    for n, (page, errors) in enumerate(pages):
        if failed and not page.is_closed():
            target = SCREENSHOTS_DIR / "failures" / f"{_safe_name(request.node.name)}-{n}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(target))
                print(f"failure screenshot: {target}")
            except Exception as exc:  # the page may have crashed; the original failure matters more
                print(f"could not take a failure screenshot: {exc}")
            if errors:
                print("browser console errors:\n" + "\n".join(errors[-30:]))
        page.context.close()


@pytest.fixture
def page(new_page: Callable[..., Page], browser_context_args: dict[str, Any]) -> Page:
    """A fresh page (own context, 1280x900) for this test."""
    return new_page(**browser_context_args)


@pytest.fixture
def notebook_name(request: pytest.FixtureRequest) -> str:
    """A unique, file-name-safe notebook name for this test (e.g. ``test_x_lab.ipynb``)."""
    return f"{_safe_name(request.node.name)}.ipynb"
