"""Benchmark of the client stack against the official ``openai`` SDK, both talking to the same local server.

Run: ``python benchmarks/bench_client.py`` (add ``--quick`` for a fast check with fewer jobs). Prints Markdown
tables; every figure comes from one run (the lag section shows each of its rounds).

1. Completion-detection lag: how long after the server marks a job completed the client notices, and how many
   status requests each job costs. N jobs run concurrently within each client; the clients run one after the
   other on the same server (speed 1.0, so a 4 s clip completes about 3.5 s after its create), in several
   rounds, since a few milliseconds of machine noise move a median of 8.
2. Download of a large video: throughput and peak RSS growth of each client, each in its own process, the
   server in another one, with curl as the yardstick.
3. A sweep of many jobs at 16 at a time: requests by kind and wall time (each client on its own server).
4. A cached re-run: the same requests again cost no request at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

import sora_nb
from bench_server import fake_job, server_process  # the same fake 200 MiB job and server launcher
from sora_nb import engine as sora_engine
from sora_nb.client import AsyncVideosClient
from sora_nb.runner import get_runner

if TYPE_CHECKING:  # imported where used, so that a download child loads only the client it measures
    import httpx2
    import openai

    from sora_nb.server import ServerHandle

KEY = "bench-key"
SIZE = "720x1280"
SECONDS = 4
CONCURRENCY = 16
SWEEP_SPEED = 20.0
STATUS_KINDS = ("retrieve", "list")
KINDS = ("create", "retrieve", "list", "download")
DOWNLOAD_ROUNDS = 5
STAGGER = 0.37  # seconds between job starts in the lag section
MiB = 2**20
CHUNK_WARM = MiB


# ----- helpers ------------------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _kinds(counts: Counter[str]) -> str:
    shown = [f"{kind} {counts[kind]}" for kind in KINDS if counts[kind]]
    shown += [f"{kind} {n}" for kind, n in sorted(counts.items()) if kind not in KINDS and n]
    return ", ".join(shown) or "none"


def _status_requests(counts: Counter[str]) -> int:
    return sum(counts[kind] for kind in STATUS_KINDS)


def _request_kind(request: httpx2.Request) -> str:
    """The operation a request of the SDK performs, named as AsyncVideosClient.requests names it."""
    path = request.url.path.rstrip("/")
    if path.endswith("/content"):
        return "download"
    if path.endswith("/videos"):
        return "create" if request.method == "POST" else "list"
    if request.method == "GET":
        return "retrieve"
    return request.method.lower()


class CountingHttp:
    """The SDK's own HTTP client (``openai.DefaultHttpxClient``: httpx2 with the SDK's timeouts and limits) with a
    request hook that counts requests by operation (thread-safe)."""

    def __init__(self) -> None:
        import openai

        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.client = openai.DefaultHttpxClient(event_hooks={"request": [self._hook]})

    def _hook(self, request: httpx2.Request) -> None:
        with self._lock:
            self.counts[_request_kind(request)] += 1

    def sdk(self, base_url: str, key: str) -> openai.OpenAI:
        import openai

        return openai.OpenAI(api_key=key, base_url=base_url, http_client=self.client)


@contextlib.contextmanager
def _server(data_dir: Path, *, speed: float, max_active: int = 32, poll_hint: bool = True) -> Iterator[ServerHandle]:
    from sora_nb.server import start

    handle = start(speed=speed, data_dir=data_dir, max_active=max_active, key=KEY, poll_hint=poll_hint)
    try:
        yield handle
    finally:
        handle.stop()


def _completed_at(handle: ServerHandle, video_id: str) -> float:
    """When the server marked the job completed (Unix seconds)."""
    store = handle.app.store
    job = store.get(video_id)
    assert job is not None, f"the server does not know {video_id}"
    completed_at = store.state(job).completed_at
    assert completed_at is not None, f"{video_id} is not completed on the server"
    return completed_at


def _engine() -> sora_engine.Engine:
    engine = sora_engine._engine
    assert engine is not None, "sora_nb has not built its engine yet"
    return engine


def _requests() -> Counter[str]:
    """A copy of the sora_nb engine's request counts."""
    return Counter(_engine().client.requests)


def _close_engine() -> None:
    """Close the sora_nb engine's connection pool (on the runner loop, where it lives)."""
    engine = sora_engine._engine
    if engine is not None:
        get_runner().submit(engine.client.aclose()).result(timeout=10)


def _configure(handle: ServerHandle, cache_dir: Path) -> None:
    """Point sora_nb at ``handle`` (a new engine is built for the next job)."""
    sora_nb.configure(base_url=handle.base_url, api_key=handle.key, cache_dir=cache_dir, max_concurrency=CONCURRENCY)


def _submit_all(prompts: Sequence[str]) -> list[sora_nb.Job]:
    return [sora_nb.submit(prompt, size=SIZE, seconds=SECONDS) for prompt in prompts]


# ----- 1. completion-detection lag --------------------------------------------------------------------------
@dataclass
class LagRun:
    client: str
    lags: list[float]
    counts: Counter[str]
    wall: float
    to_file: list[float] = field(default_factory=list)


def lag_sdk(handle: ServerHandle, prompts: Sequence[str]) -> LagRun:
    http = CountingHttp()
    client = http.sdk(handle.base_url, handle.key)

    def one(index_prompt: tuple[int, str]) -> float:
        index, prompt = index_prompt
        time.sleep(index * STAGGER)  # staggered starts, so no single polling phase decides the result
        video = client.videos.create(prompt=prompt, size="720x1280", seconds="4")
        done = client.videos.poll(video.id)
        seen = time.time()
        assert done.status == "completed", f"{done.id} ended as {done.status}"
        return seen - _completed_at(handle, done.id)

    started = time.perf_counter()
    with ThreadPoolExecutor(len(prompts)) as pool:
        lags = list(pool.map(one, enumerate(prompts)))
    wall = time.perf_counter() - started
    http.client.close()
    return LagRun("openai SDK (create + poll)", lags, http.counts, wall)


def lag_sora(handle: ServerHandle, prompts: Sequence[str], cache_dir: Path) -> LagRun:
    _configure(handle, cache_dir)
    detected: dict[str, float] = {}
    cached: dict[str, float] = {}

    def observe(job: sora_nb.Job) -> None:  # runs on the runner thread
        now = time.time()
        if job.video is not None and job.video.status == "completed":
            detected.setdefault(job.video.id, now)
        if job.status == "completed" and job.id is not None:
            cached.setdefault(job.id, now)

    started = time.perf_counter()
    jobs = []
    for index, prompt in enumerate(prompts):
        time.sleep(STAGGER if index else 0.0)  # the same staggered starts as the SDK side
        job = sora_nb.submit(prompt, size=SIZE, seconds=SECONDS)
        job.observe(observe)
        jobs.append(job)
    for job in jobs:
        job.result(timeout=300)
    wall = time.perf_counter() - started
    counts = _requests()
    _close_engine()
    ids = [job.id for job in jobs if job.id is not None]
    lags = [detected[i] - _completed_at(handle, i) for i in ids]
    to_file = [cached[i] - _completed_at(handle, i) for i in ids]
    return LagRun("sora_nb (submit + result)", lags, counts, wall, to_file)


def bench_lag(n: int, rounds: int, tmp: Path) -> None:
    print(f"## 1. Completion-detection lag ({n} jobs of {SECONDS} s {SIZE}, speed 1.0, {rounds} rounds)\n")
    print(
        f"All {n} jobs of a client run concurrently, started {STAGGER} s apart; the SDK first, then sora_nb, "
        "on the same in-process server, a fresh one per round and hint setting. "
        "Lag = client-side time the status was seen as `completed` minus the server's `completed_at`. "
        "For sora_nb it is taken from `job.observe` when `job.video.status` first reads completed (before the "
        "download); 'to file' is when the job itself is completed (MP4, thumbnail and spritesheet cached). "
        "'vs SDK' is sora_nb's median lag over the SDK's in the same round (target <= 0.5, with no more status "
        "requests per job).\n"
    )
    runs: list[tuple[int, LagRun, float | None]] = []
    for round_no in range(1, rounds + 1):
        for hint in (True, False):  # the local server's openai-poll-after-ms hint; most gateways send none
            label = "with poll hint" if hint else "no poll hint"
            tag = f"r{round_no} {label}"
            with _server(tmp / f"server-lag-{round_no}-{hint}", speed=1.0, poll_hint=hint) as handle:
                sdk = lag_sdk(handle, [f"lag sdk {i} {tag}: a lighthouse at dusk, waves {i}" for i in range(n)])
                ours = lag_sora(
                    handle, [f"lag sora {i} {tag}: a lighthouse, waves {i}" for i in range(n)], tmp / f"c-{tag}"
                )
            ratio = statistics.median(ours.lags) / statistics.median(sdk.lags)
            runs += [
                (round_no, dataclasses.replace(sdk, client=f"{sdk.client}, {label}"), None),
                (round_no, dataclasses.replace(ours, client=f"{ours.client}, {label}"), ratio),
            ]
    print(
        "| round | client | jobs | median lag s | max lag s | vs SDK | status requests/job | requests by kind "
        "| median to file s | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for round_no, run, ratio in runs:
        print(
            f"| {round_no} | {run.client} | {len(run.lags)} | {statistics.median(run.lags):.3f} "
            f"| {max(run.lags):.3f} | {_fmt(ratio)} | {_status_requests(run.counts) / len(run.lags):.2f} "
            f"| {_kinds(run.counts)} | {_fmt(statistics.median(run.to_file) if run.to_file else None, 3)} "
            f"| {run.wall:.1f} |"
        )
    print(
        f"\nAll {rounds} rounds together ({rounds * n} jobs per row):\n\n"
        "| client | median lag s | vs SDK | status requests/job | rounds with lag <= 0.5x SDK and no more requests |"
        "\n|---|---|---|---|---|"
    )
    for label in ("with poll hint", "no poll hint"):
        sdk_runs = [run for _, run, ratio in runs if ratio is None and run.client.endswith(label)]
        our_runs = [run for _, run, ratio in runs if ratio is not None and run.client.endswith(label)]
        ratios = [ratio for _, run, ratio in runs if ratio is not None and run.client.endswith(label)]
        met = sum(
            ratio <= 0.5 and _status_requests(ours.counts) <= _status_requests(sdk.counts)
            for ours, sdk, ratio in zip(our_runs, sdk_runs, ratios, strict=True)
        )
        sdk_lag = statistics.median(lag for run in sdk_runs for lag in run.lags)
        for group in (sdk_runs, our_runs):
            lag = statistics.median(lag for run in group for lag in run.lags)
            per_job = sum(_status_requests(run.counts) for run in group) / sum(len(run.lags) for run in group)
            ours = group is our_runs
            print(
                f"| {group[0].client} | {lag:.3f} | {f'{lag / sdk_lag:.2f}' if ours else '-'} | {per_job:.2f} "
                f"| {f'{met} of {rounds}' if ours else '-'} |"
            )
    print()


# ----- 2. download throughput and memory --------------------------------------------------------------------
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def _status_kib(name: str) -> int:
    match = re.search(rf"^{name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _memory_baseline() -> tuple[int, bool]:
    """VmRSS now, after resetting VmHWM to it (``clear_refs`` 5) when the kernel allows; (KiB, reset worked)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    return _status_kib("VmRSS"), reset


def child_download(which: str, url: str, video_id: str, dest: Path) -> None:
    """Run in a child process: one download with one client; prints a JSON line of measurements."""
    key = os.environ["BENCH_KEY"]
    if which == "sora_nb":

        async def run() -> tuple[float, int, bool]:
            async with AsyncVideosClient(url, key) as client:
                await client.retrieve(video_id)  # warm-up: connection, lazy imports
                baseline, reset = _memory_baseline()
                started = time.perf_counter()
                await client.download(video_id, dest)
                return time.perf_counter() - started, baseline, reset

        elapsed, baseline, reset = asyncio.run(run())
    else:
        import openai

        with openai.OpenAI(api_key=key, base_url=url) as client:
            client.videos.retrieve(video_id)  # warm-up
            baseline, reset = _memory_baseline()
            started = time.perf_counter()
            with client.videos.with_streaming_response.download_content(video_id) as response:
                response.stream_to_file(dest)
            elapsed = time.perf_counter() - started
    result = {
        "seconds": elapsed,
        "bytes": dest.stat().st_size,
        "rss_before_kib": baseline,
        "hwm_kib": _status_kib("VmHWM"),
        "hwm_reset": reset,
    }
    print(json.dumps(result), flush=True)


def _proc_hwm_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _run_sampled(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, int]:
    """Run a command; (stdout, its peak RSS in KiB, sampled every 5 ms from /proc). Raises if it fails.

    Not wait4's ru_maxrss: that also counts the parent's pages shared by the child before exec.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _proc_hwm_kib(proc.pid))
        time.sleep(0.005)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}: {out[-500:]}")
    return out, peak


def _warm_up(url: str) -> None:
    """One untimed download, so every client meets a warm server process and page cache."""
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as response:
        response.raise_for_status()
        for _ in response.iter_raw(CHUNK_WARM):
            pass


@dataclass
class DownloadRun:
    client: str
    seconds: float
    size: int
    peak_mib: float
    growth_mib: float | None

    @property
    def mib_s(self) -> float:
        return self.size / MiB / self.seconds


def _ensure_curl() -> str | None:
    """The path of curl, installing it with apt-get when missing; None if that is impossible."""
    found = shutil.which("curl")
    if found:
        return found
    with contextlib.suppress(OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=120)
        subprocess.run(["apt-get", "install", "-y", "curl"], check=True, capture_output=True, timeout=300)
    return shutil.which("curl")


def bench_download(size_mib: int, tmp: Path) -> None:
    data_dir = tmp / "server-download"
    video_id = fake_job(data_dir, size_mib)
    expected = size_mib * MiB
    samples: dict[str, list[DownloadRun]] = {}
    curl = _ensure_curl()
    with server_process(data_dir, KEY) as (url, _):
        content = f"{url}/videos/{video_id}/content"
        _warm_up(content)
        for _ in range(DOWNLOAD_ROUNDS):  # interleaved rounds: load on this 2-core machine varies a lot
            if curl:
                dest = tmp / "curl.mp4"
                out, peak = _run_sampled(
                    [
                        curl,
                        "-s",
                        "-S",
                        "-o",
                        str(dest),
                        "-H",
                        f"Authorization: Bearer {KEY}",
                        "-w",
                        "%{time_total}",
                        content,
                    ]
                )
                samples.setdefault("curl", []).append(
                    DownloadRun("curl", float(out.strip()), dest.stat().st_size, peak / 1024, None)
                )
                dest.unlink()
            env = {**os.environ, "BENCH_KEY": KEY}
            for which, label in (
                ("sora_nb", "sora_nb `AsyncVideosClient.download`"),
                ("openai", "openai SDK `with_streaming_response` + `stream_to_file`"),
            ):
                dest = tmp / f"{which}.mp4"
                out, _ = _run_sampled([sys.executable, __file__, "--child", which, url, video_id, str(dest)], env)
                result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
                growth = (result["hwm_kib"] - result["rss_before_kib"]) / 1024 if result["hwm_reset"] else None
                samples.setdefault(label, []).append(
                    DownloadRun(label, result["seconds"], result["bytes"], result["hwm_kib"] / 1024, growth)
                )
                dest.unlink(missing_ok=True)
    runs = []
    for label, taken in samples.items():  # the median time; the worst memory
        growths = [r.growth_mib for r in taken if r.growth_mib is not None]
        runs.append(
            DownloadRun(
                label,
                statistics.median(r.seconds for r in taken),
                min(r.size for r in taken),
                max(r.peak_mib for r in taken),
                max(growths) if growths else None,
            )
        )
    for run in runs:
        assert run.size == expected, f"{run.client} saved {run.size} bytes, not {expected}"
    print(f"## 2. Downloading a {size_mib} MiB video (server and each client in its own process)\n")
    print(
        "Peak RSS = the client process's VmHWM during the download; growth = that minus its VmRSS just before "
        "(VmHWM is reset first through /proc/self/clear_refs, after a warm-up status request). Both Python "
        "children run this script, which loads httpx and sora_nb's client modules; the SDK child also loads "
        "openai. curl's peak is sampled every 5 ms from /proc and its time is its own `time_total`. One untimed "
        f"download warms the server first; then {DOWNLOAD_ROUNDS} rounds of curl, sora_nb, SDK one at a time; "
        "the table shows each client's median time and its worst peak memory.\n"
    )
    if not curl:
        print("curl is not installed and could not be installed with apt-get; no curl baseline.\n")
    print("| client | s | MiB/s | vs curl | peak RSS MiB | peak RSS growth MiB |")
    print("|---|---|---|---|---|---|")
    base = next((r.mib_s for r in runs if r.client == "curl"), None)
    for run in runs:
        ratio = f"{run.mib_s / base:.2f}x" if base else "-"
        print(
            f"| {run.client} | {run.seconds:.2f} | {run.mib_s:.0f} | {ratio} | {run.peak_mib:.1f} "
            f"| {_fmt(run.growth_mib, 1)} |"
        )
    sora = next(r for r in runs if r.client.startswith("sora_nb"))
    verdicts = []
    if base:
        verdicts.append(f"throughput {sora.mib_s / base:.2f}x curl (target >= 0.9x)")
    if sora.growth_mib is not None:
        verdicts.append(f"RSS growth {sora.growth_mib:.1f} MiB (target < 32 MiB)")
    print(f"\nsora_nb: {'; '.join(verdicts)}.\n")


# ----- 3. sweep -----------------------------------------------------------------------------------------------
@dataclass
class SweepRun:
    client: str
    jobs: int
    counts: Counter[str]
    wall: float


def sweep_sdk(handle: ServerHandle, prompts: Sequence[str]) -> SweepRun:
    http = CountingHttp()
    client = http.sdk(handle.base_url, handle.key)

    def one(prompt: str) -> str:
        video = client.videos.create(prompt=prompt, size="720x1280", seconds="4")
        done = client.videos.poll(video.id)
        assert done.status == "completed", f"{done.id} ended as {done.status}"
        return done.id

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, prompts))
    wall = time.perf_counter() - started
    http.client.close()
    return SweepRun(f"openai SDK (ThreadPoolExecutor({CONCURRENCY}), create + poll)", len(prompts), http.counts, wall)


def sweep_sora(handle: ServerHandle, prompts: Sequence[str], cache_dir: Path) -> SweepRun:
    _configure(handle, cache_dir)
    started = time.perf_counter()
    jobs = _submit_all(prompts)
    for job in jobs:
        job.result(timeout=600)
    wall = time.perf_counter() - started
    counts = _requests()
    _close_engine()
    return SweepRun(f"sora_nb (max_concurrency={CONCURRENCY}, incl. downloads)", len(prompts), counts, wall)


def bench_sweep(n: int, tmp: Path) -> None:
    with _server(tmp / "server-sweep-sdk", speed=SWEEP_SPEED, max_active=200) as handle:
        sdk = sweep_sdk(handle, [f"sweep sdk {i}: paper boats on a canal, take {i}" for i in range(n)])
    with _server(tmp / "server-sweep-sora", speed=SWEEP_SPEED, max_active=200) as handle:
        prompts = [f"sweep sora_nb {i}: paper boats on a canal, take {i}" for i in range(n)]
        sora = sweep_sora(handle, prompts, tmp / "c-sweep")
    print(f"## 3. Sweep of {n} jobs ({SECONDS} s {SIZE}, server speed {SWEEP_SPEED:g}, max_active 200)\n")
    print(
        "Each client has its own fresh server and distinct prompts. The SDK side only creates and polls; sora_nb "
        "also downloads each finished video, thumbnail and spritesheet into its cache.\n"
    )
    print("| client | jobs | wall s | create | retrieve | list | download | status requests | status/job |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in (sdk, sora):
        c = run.counts
        status = _status_requests(c)
        print(
            f"| {run.client} | {run.jobs} | {run.wall:.1f} | {c['create']} | {c['retrieve']} | {c['list']} "
            f"| {c['download']} | {status} | {status / run.jobs:.1f} |"
        )
    ratio = _status_requests(sora.counts) / max(1, _status_requests(sdk.counts))
    print(f"\nsora_nb status requests / SDK status requests = {ratio:.2f} (target <= 0.25).\n")


# ----- 4. cached re-run ---------------------------------------------------------------------------------------
def bench_cached(n: int, tmp: Path) -> None:
    with _server(tmp / "server-cached", speed=SWEEP_SPEED, max_active=200) as handle:
        _configure(handle, tmp / "c-cached")
        prompts = [f"cached {i}: a snow globe on a windowsill, take {i}" for i in range(n)]
        rows = []
        engine: sora_engine.Engine | None = None
        for label in ("first run", "re-run (same requests)"):
            # configure() changed the settings, so the first run builds a new engine whose counts start at zero
            before = _requests() if engine is not None else Counter[str]()
            started = time.perf_counter()
            jobs = _submit_all(prompts)
            paths = [job.result(timeout=300) for job in jobs]
            wall = time.perf_counter() - started
            assert engine is None or _engine() is engine, "the re-run used another engine"
            engine = _engine()
            made = _requests() - before
            rows.append((label, len(jobs), sum(job.cached for job in jobs), made, wall))
            assert all(path.is_file() for path in paths)
        _close_engine()
    print(f"## 4. Cached re-run of {n} requests (sora_nb, server speed {SWEEP_SPEED:g})\n")
    print("| run | jobs | served from cache | requests | requests by kind | wall s |")
    print("|---|---|---|---|---|---|")
    for label, count, cached, made, wall in rows:
        print(f"| {label} | {count} | {cached} | {sum(made.values())} | {_kinds(made)} | {wall:.3f} |")
    made, wall = rows[-1][3], rows[-1][4]
    print(f"\nRe-run: {sum(made.values())} requests (target 0), {wall:.3f} s (target < 1 s).\n")


# ----- main ---------------------------------------------------------------------------------------------------
def _versions() -> str:
    import httpx2
    import openai

    curl = shutil.which("curl")
    curl_version = "not installed"
    if curl:
        first = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False).stdout.split()
        curl_version = first[1] if len(first) > 1 else "?"
    return (
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}; sora_nb {sora_nb.__version__}, openai {openai.__version__}, "
        f"httpx {httpx.__version__} (sora_nb), httpx2 {httpx2.__version__} (SDK), curl {curl_version}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer jobs: 3 for the lag, 20 for the sweep")
    parser.add_argument("--lag-rounds", type=int, default=5, help="rounds of the lag section (default 5)")
    parser.add_argument("--only", choices=["lag", "download", "sweep", "rerun"], help="run one section")
    parser.add_argument("--child", nargs=4, metavar=("CLIENT", "URL", "VIDEO_ID", "DEST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks its Videos API deprecated
    if args.child:
        which, url, video_id, dest = args.child
        child_download(which, url, video_id, Path(dest))
        return 0
    print(_versions() + "\n")
    lag_jobs, download_mib, sweep_jobs, cached_jobs = (3, 50, 20, 10) if args.quick else (8, 200, 100, 20)
    lag_rounds = 1 if args.quick else args.lag_rounds
    sections: list[tuple[str, Callable[[Path], None]]] = [
        ("completion lag", lambda tmp: bench_lag(lag_jobs, lag_rounds, tmp)),
        ("download", lambda tmp: bench_download(download_mib, tmp)),
        ("sweep", lambda tmp: bench_sweep(sweep_jobs, tmp)),
        ("cached re-run", lambda tmp: bench_cached(cached_jobs, tmp)),
    ]
    keys = {"completion lag": "lag", "download": "download", "sweep": "sweep", "cached re-run": "rerun"}
    sections = [(name, run) for name, run in sections if args.only in (None, keys[name])]
    failed = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sora-nb-bench-") as root:
        for name, section in sections:
            tmp = Path(root) / name.replace(" ", "-")
            tmp.mkdir()
            try:
                section(tmp)
            except Exception:
                failed.append(name)
                traceback.print_exc()
                print(f"**{name}: failed** (traceback on stderr)\n")
            finally:
                _close_engine()
    print(
        f"Total benchmark time: {time.perf_counter() - started:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f}."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
