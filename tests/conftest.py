"""Shared fixtures: real local servers on loopback, and small helpers to wait for jobs and read MP4s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sora_nb.server import ServerHandle, start

FAST = 50.0  # server speed for tests that only need finished videos


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
