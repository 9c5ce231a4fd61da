"""Benchmark of a sweep against a one-at-a-time engine: 8 jobs on the local server playing Aquiles-Image, which runs
one job at a time and answers a second create 503 "The limit of 1 concurrent tasks has been reached".

Measured: wall time against the physical limit (8 x one job's time, measured alone), creates accepted by the
server (counted by listing its videos), creates refused, status requests per job; for sora_nb's ``sweep`` and
for the official ``openai`` SDK used as its docs show (``client.videos.create_and_poll`` then
``download_content``, 8 threads, the SDK's default retries).

Run: ``python benchmarks/bench_engines.py`` (``--jobs N``, ``--speed S``). Prints Markdown tables; the numbers
recorded in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai

import sora_nb
from bench_server import server_process  # the server in its own process, as an engine would be
from sora_nb import engine as sora_engine

KEY = "bench-key"
DIALECT = "aquiles"


def accepted(url: str) -> int:
    """The jobs the server holds, by its own list endpoint: the creates it accepted."""
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        return len(client.get(f"{url}/videos", params={"limit": 100}).json()["data"])


def one_alone(tmp: Path, speed: float) -> tuple[float, float]:
    """Seconds for one job alone: with sora_nb, create to cached file (the second of two in a row, so that
    start-up costs are not counted), and the engine's own render, create to "completed" polled every 20 ms."""
    with server_process(tmp / "alone", KEY, "--dialect", DIALECT, "--speed", str(speed)) as (url, _):
        sora_nb.configure(base_url=url, api_key=KEY, provider=DIALECT, cache_dir=tmp / "alone-cache")
        sora_nb.submit("a first clip to warm up: a lighthouse at dawn").result(timeout=300)
        started = time.perf_counter()
        sora_nb.submit("one clip alone: a lighthouse at dusk").result(timeout=300)
        job = time.perf_counter() - started
        with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as raw:
            started = time.perf_counter()
            video = raw.post(f"{url}/videos", json={"prompt": "one render alone: a lighthouse at night"}).json()
            while raw.get(f"{url}/videos/{video['id']}").json()["status"] != "completed":
                time.sleep(0.02)
            render = time.perf_counter() - started
    return job, render


def sora_nb_sweep(tmp: Path, speed: float, jobs: int) -> dict[str, Any]:
    with server_process(tmp / "sweep", KEY, "--dialect", DIALECT, "--speed", str(speed)) as (url, _):
        sora_nb.configure(base_url=url, api_key=KEY, provider=DIALECT, cache_dir=tmp / "sweep-cache")
        started = time.perf_counter()
        paths = sora_nb.sweep([f"sweep clip {i}: a lighthouse at dusk" for i in range(jobs)]).wait(timeout=900)
        wall = time.perf_counter() - started
        assert sora_engine._engine is not None
        counts = sora_engine._engine.client.requests
        taken = accepted(url)
    return {
        "wall": wall,
        "videos": sum(p is not None for p in paths),
        "failed": sum(p is None for p in paths),
        "sent": counts["create"],
        "accepted": taken,
        "status": counts["retrieve"] + counts["list"],
    }


def sdk_threads(tmp: Path, speed: float, jobs: int) -> dict[str, Any]:
    """The official SDK as a user would run it: one thread per prompt, create_and_poll, then download_content."""
    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def count(request: httpx.Request) -> None:
        path = request.url.path.rstrip("/")
        kind = "create" if request.method == "POST" else "content" if path.endswith("/content") else "status"
        with lock:
            sent[kind] += 1

    outcomes: Counter[str] = Counter()
    with server_process(tmp / "sdk", KEY, "--dialect", DIALECT, "--speed", str(speed)) as (url, _):
        http = httpx.Client(event_hooks={"request": [count]}, timeout=120)
        sdk = openai.OpenAI(base_url=url, api_key=KEY, http_client=http)

        def one(i: int) -> None:
            try:
                video = sdk.videos.create_and_poll(prompt=f"sdk clip {i}: a lighthouse at dusk", model="wan2.2")
            except openai.APIError as exc:
                outcomes[f"create failed ({type(exc).__name__})"] += 1
                return
            if video.status != "completed":  # Aquiles says "processing", which create_and_poll does not wait on
                outcomes[f"create_and_poll returned {video.status!r}"] += 1
            try:
                data = sdk.videos.download_content(video.id).read()
            except openai.APIError as exc:
                outcomes[f"download failed ({type(exc).__name__})"] += 1
                return
            outcomes["video" if data[4:8] == b"ftyp" else "download not an MP4"] += 1

        started = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, range(jobs)))
        wall = time.perf_counter() - started
        taken = accepted(url)
        http.close()
    return {
        "wall": wall,
        "videos": outcomes["video"],
        "failed": jobs - outcomes["video"],
        "sent": sent["create"],
        "accepted": taken,
        "status": sent["status"],
        "outcomes": ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--speed", type=float, default=3.0, help="server speed (3: one 4 s clip in ~1.5 s)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK's notice that the hosted API closed
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}\n")
    tmp = Path(tempfile.mkdtemp(prefix="sora-nb-bench-engines-"))
    try:
        alone, render = one_alone(tmp, args.speed)
        runs = {"sora_nb.sweep": sora_nb_sweep(tmp, args.speed, args.jobs)}
        runs["openai SDK, 8 threads"] = sdk_threads(tmp, args.speed, args.jobs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    limit, engine = args.jobs * alone, args.jobs * render
    print(
        f"## {args.jobs} jobs against the one-at-a-time engine (Aquiles-Image dialect, speed {args.speed:g})\n\n"
        f"One job alone: {alone:.2f} s with sora_nb (create to cached file), {render:.2f} s of the engine's own "
        f"render (create to completed, polled every 20 ms). Physical limits: {args.jobs} x {alone:.2f} = "
        f"{limit:.1f} s, and {args.jobs} x {render:.2f} = {engine:.1f} s of rendering.\n"
    )
    print(
        "| client | videos | failed | wall s | wall / (8 x job) | wall / (8 x render) | creates accepted "
        "| creates refused | status req/job |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        print(
            f"| {name} | {r['videos']} | {r['failed']} | {r['wall']:.1f} | {r['wall'] / limit:.2f} | "
            f"{r['wall'] / engine:.2f} | {r['accepted']} | {r['sent'] - r['accepted']} | "
            f"{r['status'] / args.jobs:.1f} |"
        )
    print(f"\nopenai SDK outcomes: {runs['openai SDK, 8 threads']['outcomes']}")
    sys.exit(0)


if __name__ == "__main__":
    main()
