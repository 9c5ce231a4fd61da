"""The runner: one background thread with its own asyncio loop, on which every job runs.

Sync code schedules coroutines here and gets concurrent futures back; this works the same in Jupyter (whose
loop is already running), IPython, scripts, and hosts that do not pump the kernel loop between cells.
asyncio is never patched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Runner:
    """A daemon thread running an event loop forever."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="sora-nb-runner", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the runner loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


_runner: Runner | None = None
_lock = threading.Lock()


def get_runner() -> Runner:
    """The process's runner, started on first use."""
    global _runner
    with _lock:
        if _runner is None:
            _runner = Runner()
        return _runner
