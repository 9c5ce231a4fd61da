"""Benchmark of the local server: render times, and memory while serving a large file to many clients.

Run: ``python benchmarks/bench_server.py`` (add ``--quick`` to skip the 12 s clips). Prints Markdown tables;
the numbers recorded in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import httpx

from sora_nb.server.engines.synthetic import RenderSpec, render
from sora_nb.server.records import JobRecord
from sora_nb.server.store import safe_key, write_json_atomic

KEY = "bench-key"
SERVE_MIB = 200
CLIENTS = 10


def bench_render(quick: bool) -> None:
    print("## Render time (PyAV, H.264 + AAC, thumbnail and spritesheet included)\n")
    print("| clip | size | frames | runs | median s | min s | realtime factor |")
    print("|---|---|---|---|---|---|---|")
    for seconds in (4,) if quick else (4, 12):
        for width, height in ((1280, 720), (1792, 1024)):
            times = []
            runs = 3 if seconds == 4 else 2
            for run in range(runs):
                with tempfile.TemporaryDirectory() as out:
                    spec = RenderSpec(
                        prompt=f"benchmark clip number {run}", width=width, height=height, seconds=seconds, seed=run
                    )
                    started = time.perf_counter()
                    result = render(spec, Path(out))
                    times.append(time.perf_counter() - started)
            median = statistics.median(times)
            print(
                f"| {seconds} s | {width}x{height} | {result.frames} | {runs} | {median:.2f} | {min(times):.2f} "
                f"| {seconds / median:.1f}x |"
            )
    print()


def fake_job(data_dir: Path, size_mib: int) -> str:
    """A finished job whose video is a ``size_mib`` MiB file that starts like an MP4 (clients check the magic)."""
    job = JobRecord(
        id="video_bench",
        kind="generate",
        model="sora-2",
        prompt="bench",
        width=1280,
        height=720,
        seconds=4,
        fps=24,
        seed=0,
        created_at=time.time() - 60,
        queue_seconds=0,
        run_seconds=0,
        scene_prompt="bench",
        render_done_at=time.time() - 59,
        etags={"video": '"bench"', "thumbnail": '"t"', "spritesheet": '"s"'},
    )
    directory = data_dir / "jobs" / safe_key(job.id)
    directory.mkdir(parents=True)
    block = os.urandom(1024 * 1024)
    with (directory / "video.mp4").open("wb") as f:
        f.write(b"\0\0\0\x18ftypmp42" + block[12:])
        for _ in range(size_mib - 1):
            f.write(block)
    for name in ("thumbnail.webp", "spritesheet.jpg"):
        (directory / name).write_bytes(b"x")
    write_json_atomic(directory / "job.json", asdict(job))
    return job.id


@contextlib.contextmanager
def server_process(data_dir: Path, key: str, *extra: str) -> Iterator[tuple[str, int]]:
    """``python -m sora_nb.server`` (plus ``extra`` flags) in its own process: yields (base URL, pid)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sora_nb.server",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--key",
            key,
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:  # the socket listens before the URL is printed
            match = re.search(r"listening on (\S+)", line)
            url = match.group(1) if match else url
            if "Ctrl+C" in line:
                break
        if not url:
            raise RuntimeError("the server process did not announce its URL")
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else 0.0


def bench_serving() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        video_id = fake_job(data_dir, SERVE_MIB)
        with server_process(data_dir, KEY) as (url, pid):
            headers = {"Authorization": f"Bearer {KEY}"}
            httpx.get(f"{url}/videos/{video_id}", headers=headers).raise_for_status()
            baseline = _rss_mib(pid)
            peak = baseline
            received = [0] * CLIENTS
            stop = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, _rss_mib(pid))
                    time.sleep(0.02)

            def client(index: int) -> None:
                with httpx.stream("GET", f"{url}/videos/{video_id}/content", headers=headers, timeout=120) as r:
                    r.raise_for_status()
                    for chunk in r.iter_raw(1024 * 1024):
                        received[index] += len(chunk)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            workers = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            elapsed = time.perf_counter() - started
            stop.set()
            sampler.join()
    total_mib = sum(received) / 2**20
    assert all(n == SERVE_MIB * 2**20 for n in received), "a client received a short file"
    print(f"## Serving a {SERVE_MIB} MiB file to {CLIENTS} concurrent clients (server in its own process)\n")
    print("| served | wall s | throughput MiB/s | server RSS before MiB | peak RSS MiB | growth MiB |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {total_mib:.0f} MiB | {elapsed:.1f} | {total_mib / elapsed:.0f} | {baseline:.1f} | {peak:.1f} "
        f"| {peak - baseline:.1f} |"
    )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only 4 s clips")
    args = parser.parse_args()
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}\n")
    bench_render(args.quick)
    bench_serving()


if __name__ == "__main__":
    main()
