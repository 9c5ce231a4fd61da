"""Benchmark of sweeps and history: a 100-job sweep on the local server, and history() over 1,000 cached videos.

Run: ``python benchmarks/bench_sweep.py`` (``--jobs N``, ``--entries N`` to change the sizes). Prints Markdown
tables; the numbers recorded in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sora_nb
from bench_server import server_process  # the server in its own process, so client memory is measured alone
from sora_nb import engine as sora_engine
from sora_nb.cache import VideoCache
from sora_nb.video import Video

KEY = "bench-key"


def _kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def bench_sweep(jobs: int, tmp: Path) -> None:
    with server_process(tmp / "server", KEY, "--speed", "20", "--max-active", "400") as (url, _):
        sora_nb.configure(base_url=url, api_key=KEY, cache_dir=tmp / "cache", max_concurrency=16)
        before = _kib("VmRSS")
        started = time.perf_counter()
        gallery = sora_nb.sweep([f"sweep clip {i}: a paper boat on a pond" for i in range(jobs)], seconds=4)
        paths = gallery.wait()
        wall = time.perf_counter() - started
        peak = _kib("VmHWM")
        assert sora_engine._engine is not None
        counts = dict(sora_engine._engine.client.requests)
        again_started = time.perf_counter()
        again = sora_nb.sweep([f"sweep clip {i}: a paper boat on a pond" for i in range(jobs)], seconds=4)
        again.wait()
        again_wall = time.perf_counter() - again_started
        after_counts = dict(sora_engine._engine.client.requests)
    assert all(p is not None for p in paths), "a sweep job failed"
    status = counts.get("retrieve", 0) + counts.get("list", 0)
    print(f"## A sweep of {jobs} jobs (server in its own process, speed 20; max_concurrency 16)\n")
    print("| run | jobs | wall s | create | retrieve | list | download | status/job | peak RSS MiB | RSS growth MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| first | {jobs} | {wall:.1f} | {counts.get('create', 0)} | {counts.get('retrieve', 0)} "
        f"| {counts.get('list', 0)} | {counts.get('download', 0)} | {status / jobs:.1f} | {peak / 1024:.0f} "
        f"| {(peak - before) / 1024:.0f} |"
    )
    extra = sum(after_counts.values()) - sum(counts.values())
    print(f"| re-run | {jobs} | {again_wall:.2f} | requests made: {extra} | | | | | | |\n")


def bench_history(entries: int, tmp: Path, browser: bool = False) -> None:
    cache = VideoCache(tmp / "history-cache")
    with server_process(tmp / "server-h", KEY, "--speed", "50") as (url, _):
        sora_nb.configure(base_url=url, api_key=KEY, cache_dir=cache.root)
        job = sora_nb.submit("the one real clip copied for the history benchmark")
        job.result(timeout=120)
    assert job.path and job.thumbnail and job.video
    for i in range(entries):
        video_id = f"video_hist{i:05d}"
        for variant, source in (("video", job.path), ("thumbnail", job.thumbnail)):
            target = cache.asset_path(video_id, variant)
            if not target.exists():
                os.link(source, target)
        record = Video(**{**job.video.__dict__, "id": video_id, "prompt": f"history entry {i}: a kite over hills"})
        cache.save_record(record, request={"prompt": record.prompt})
    started = time.perf_counter()
    gallery = sora_nb.history(cache=cache)
    build = time.perf_counter() - started
    state = len(json.dumps(gallery.get_state(), default=str))
    started = time.perf_counter()
    found = sora_nb.history("entry 99", cache=cache)
    search = time.perf_counter() - started
    print(f"## history() over {len(gallery)} cached videos\n")
    print(
        "Kernel side: from the call to the gallery's state being ready to send. The browser then asks for posters "
        "only for the cards on screen.\n"
    )
    print("| cached videos | history() s | synced state KiB | search 'entry 99' s | matches |")
    print("|---|---|---|---|---|")
    print(f"| {len(gallery)} | {build:.2f} | {state / 1024:.0f} | {search:.2f} | {len(found)} |\n")
    if browser:
        bench_history_render(cache.root, len(gallery), tmp)


def bench_history_render(cache_root: Path, entries: int, tmp: Path) -> None:
    """Time history() in a real JupyterLab (headless Chromium): run cell -> every card drawn, first poster shown."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from playwright.sync_api import sync_playwright
    from tests.browser.harness import (
        CHROMIUM,
        CHROMIUM_ARGS,
        JupyterServer,
        open_notebook,
        output_locator,
        run_cell,
        write_notebook,
    )

    env = {**os.environ, "SORA_NB_CACHE_DIR": str(cache_root)}
    with JupyterServer.start("lab", tmp / "lab-root", env=env) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        path = write_notebook(server.root_dir, "history.ipynb", ["import sora_nb\nsora_nb.history()"])
        open_notebook(page, server, path)
        started = time.perf_counter()
        run_cell(page, 0)
        cards = output_locator(page, 0).locator(".sora-g-card")
        page.wait_for_function(
            "n => document.querySelectorAll('.sora-g-card').length >= n", arg=entries, timeout=60_000
        )
        drawn = time.perf_counter() - started
        poster = cards.first.locator("img.sora-g-poster")
        page.wait_for_function(
            "img => img.src.startsWith('blob:') && img.naturalWidth > 0", arg=poster.element_handle(), timeout=30_000
        )
        first_poster = time.perf_counter() - started
        asked = page.evaluate("() => document.querySelectorAll('.sora-g-card[data-asked]').length")
        browser.close()
    print(f"## history() of {entries} cached videos rendered in JupyterLab (headless Chromium)\n")
    print("| cards | run cell -> all cards drawn s | -> first poster shown s | posters requested |")
    print("|---|---|---|---|")
    print(f"| {entries} | {drawn:.2f} | {first_poster:.2f} | {asked} (only cards on screen) |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--browser", action="store_true", help="also time history() in JupyterLab (Chromium)")
    parser.add_argument("--only-history", action="store_true", help="skip the sweep")
    args = parser.parse_args()
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}\n")
    tmp = Path(tempfile.mkdtemp(prefix="sora-nb-bench-sweep-"))
    try:
        if not args.only_history:
            bench_sweep(args.jobs, tmp)
        bench_history(args.entries, tmp, browser=args.browser)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
