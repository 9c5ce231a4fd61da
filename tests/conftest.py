"""Shared fixtures: real local servers on loopback, and small helpers to wait for jobs and read MP4s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sora_nb.server import ServerHandle, start

FAST = 50.0  # server speed for tests that only need finished videos
CONFIG_VARIABLES = (
    "SORA_NB_BASE_URL",
    "SORA_NB_API_KEY",
    "SORA_NB_PROVIDER",
    "SORA_NB_CACHE_DIR",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One fast openai-dialect server shared by the session."""
    with start(speed=FAST, data_dir=tmp_path_factory.mktemp("server")) as handle:
        yield handle


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    """Start servers with any options (each in its own data dir unless given); all are stopped afterwards."""
    handles: list[ServerHandle] = []

    def make(**options: Any) -> ServerHandle:
        options.setdefault("data_dir", tmp_path / f"data{len(handles)}")
        options.setdefault("speed", FAST)
        handle = start(**options)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop()


PROVIDER_FOR_DIALECT = {
    "openai": "openai",
    "json-fields": "json-fields",
    "raw-token": "raw-token",
    "cdn-redirect": "cdn-redirect",
    "new-api": "new-api",
    "azure": "azure",
}
# the self-hosted engine dialects (`sora-nb serve --dialect ...`); each has the client profile of its name
ENGINE_DIALECTS = ("sglang", "vllm-omni", "aquiles", "unsloth", "localai", "omlx")


@pytest.fixture
def configured(make_server: Callable[..., ServerHandle], tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    """Start a server and point sora_nb's process-wide configuration (and a fresh cache) at it."""
    import sora_nb
    from sora_nb import config

    saved = dict(config._explicit)

    def setup(**options: Any) -> ServerHandle:
        handle = make_server(**options)
        sora_nb.configure(
            base_url=handle.url if handle.dialect == "azure" else handle.base_url,
            api_key=handle.key,
            provider=PROVIDER_FOR_DIALECT.get(handle.dialect, handle.dialect),
            cache_dir=tmp_path / "cache",
        )
        return handle

    yield setup
    config._explicit.clear()
    config._explicit.update(saved)


@pytest.fixture
def isolated_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test starts with no configure() values and none of the variables; configure() state is restored."""
    from sora_nb import config

    saved = dict(config._explicit)
    config._explicit.clear()
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    try:
        yield
    finally:
        config._explicit.clear()
        config._explicit.update(saved)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an event loop running in the main thread until
    the session ends, and asyncio.run() refuses to start inside it."""
    items.sort(key=lambda item: "browser" in item.path.parts)
