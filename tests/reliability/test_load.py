"""Concurrency and load: 200 jobs at once from one kernel, and 4 processes sharing one cache."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sora_nb
from sora_nb import engine as engines
from sora_nb.runner import get_runner
from sora_nb.server import ServerHandle
from sora_nb.transport import MAX_IDLE_PER_ORIGIN

Configured = Callable[..., ServerHandle]


def _established_to(port: int) -> int:
    """Client-side TCP connections to ``port`` that are open now (from /proc/net/tcp and tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port, state = int(fields[2].rsplit(":", 1)[1], 16), fields[3]
            count += remote_port == port and state == "01"
    return count


@contextmanager
def watch(port: int) -> Iterator[dict[str, list[float]]]:
    """Sample the open connections to ``port`` every 20 ms, and the runner loop's lag every 10 ms."""
    seen: dict[str, list[float]] = {"connections": [], "lag": []}
    stop = threading.Event()

    def connections() -> None:
        while not stop.is_set():
            seen["connections"].append(_established_to(port))
            time.sleep(0.02)

    async def lag() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            seen["lag"].append(loop.time() - before - 0.01)

    watcher = threading.Thread(target=connections)
    watcher.start()
    probe = get_runner().submit(lag())
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()
        probe.result(timeout=5)


def test_200_concurrent_jobs_from_one_kernel(configured: Configured, record: Callable[..., None]) -> None:
    handle = configured(speed=20, max_active=400)
    sora_nb.configure(max_concurrency=50)
    port = int(handle.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with watch(port) as seen:
        # 10 prompts x 20 fresh takes each: 200 jobs with their own IDs, polls and downloads. The server renders
        # each prompt once and copies the rest (its renderer is deterministic), so the client is what is loaded.
        crowd = [sora_nb.submit(f"crowd, row {i % 10}", size="720x1280", seconds=4, new=True) for i in range(200)]
        paths = [job.result(timeout=600) for job in crowd]
    wall = time.monotonic() - started
    assert len(set(paths)) == 200 and all(p.read_bytes()[4:8] == b"ftyp" for p in paths)
    assert len(handle.app.store.jobs()) == 200
    engine = engines._engine
    assert engine is not None
    api_limit = engine.client.wire.limits.max_connections or 0
    download_threads = min(32, (os.cpu_count() or 1) + 4)  # asyncio.to_thread's default executor
    limit = api_limit + download_threads + MAX_IDLE_PER_ORIGIN
    peak = max(seen["connections"])
    assert 0 < peak <= limit, f"{peak} connections open at once; the limit is {limit}"
    lags = sorted(seen["lag"])
    p99 = lags[int(len(lags) * 0.99)]
    record(
        jobs=200,
        max_concurrency=50,
        completed=len(paths),
        creates=len(handle.app.store.jobs()),
        requests=dict(engine.client.requests),
        **{
            "peak open connections (limit)": f"{peak} ({limit})",
            "runner loop lag median / p99 / max ms": (
                f"{statistics.median(lags) * 1000:.1f} / {p99 * 1000:.1f} / {lags[-1] * 1000:.1f}"
            ),
            "wall s": f"{wall:.1f}",
        },
    )


def test_four_processes_sharing_a_cache_make_one_job(
    make_server: Callable[..., ServerHandle], tmp_path: Path, record: Callable[..., None]
) -> None:
    handle = make_server(speed=2.0)
    env = {"SORA_NB_BASE_URL": handle.base_url, "SORA_NB_API_KEY": handle.key, "SORA_NB_CACHE_DIR": str(tmp_path)}
    script = textwrap.dedent(
        """
        import sora_nb
        print(sora_nb.submit("four at once").result(timeout=90), flush=True)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    paths = {out.decode().strip() for out, _ in outputs}
    assert len(paths) == 1 and Path(paths.pop()).read_bytes()[4:8] == b"ftyp"
    assert len(handle.app.store.jobs()) == 1
    record(processes=4, creates=len(handle.app.store.jobs()), completed=4, **{"distinct files": 1, "partial files": 0})
    assert not list(tmp_path.rglob("*.part"))


def test_fresh_takes_of_one_request_at_once_all_complete(configured: Configured, record: Callable[..., None]) -> None:
    """Found by the 200-job run: identical requests with new=True contended for one request lock in one process,
    and filelock refused the second acquire on a reused worker thread ("Deadlock")."""
    handle = configured()
    takes = [sora_nb.submit("the same cell, four fresh takes", new=True) for _ in range(4)]
    paths = [job.result(timeout=120) for job in takes]
    assert len(set(paths)) == 4 and len(handle.app.store.jobs()) == 4
    record(processes=1, creates=4, completed=4, **{"distinct files": 4, "partial files": 0})


def test_a_long_lived_kernel_does_not_keep_the_request_lock(
    configured: Configured, tmp_path: Path, record: Callable[..., None]
) -> None:
    """A kernel that has created a job (and stays alive) leaves the request free for other processes sharing
    the cache: their fresh take of it is created at once, not blocked behind this process."""
    handle = configured()
    sora_nb.submit("a class shares one cache").result(timeout=60)  # this process stays alive, like a kernel
    env = {
        "SORA_NB_BASE_URL": handle.base_url,
        "SORA_NB_API_KEY": handle.key,
        "SORA_NB_CACHE_DIR": str(tmp_path / "cache"),
    }
    script = "import sora_nb\nprint(sora_nb.submit('a class shares one cache', new=True).result(timeout=60))"
    other = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert other.returncode == 0, other.stderr[-2000:]
    assert Path(other.stdout.strip()).read_bytes()[4:8] == b"ftyp" and len(handle.app.store.jobs()) == 2
    record(processes=2, creates=2, completed=2, **{"distinct files": 2, "partial files": 0})
