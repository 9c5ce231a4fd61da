"""nbval runs each notebook in its own kernel; each kernel gets its own empty cache directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

_made: list[str] = []
_started: set[str] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """The kernel starts while the notebook's first cell is set up: give it a fresh SORA_NB_CACHE_DIR, then put
    the environment back so nothing else in the session sees it."""
    notebook = item.parent.nodeid if item.parent is not None else ""
    first = notebook not in _started
    _started.add(notebook)
    saved = os.environ.get("SORA_NB_CACHE_DIR")
    if first:
        _made.append(tempfile.mkdtemp(prefix="sora-nb-notebook-"))
        os.environ["SORA_NB_CACHE_DIR"] = _made[-1]
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SORA_NB_CACHE_DIR", None)
        else:
            os.environ["SORA_NB_CACHE_DIR"] = saved


def pytest_sessionfinish() -> None:
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)
