"""What the class relay costs a student: status latency and a large download, through the relay vs direct.

    python benchmarks/bench_relay.py [--size-mib 200] [--polls 300]

The upstream is a local server in its own process holding a finished job whose video is ``--size-mib`` MiB
(the same fake job as bench_server.py); the relay runs in a second process (``sora-nb serve --engine relay``)
with one student's video mapped to that job, recorded in its ledger as a running job from before a restart, so
the relay fetches it once on start (timed as "first fetch"). Then:

1. ``GET /videos/{id}`` answered directly by the upstream vs by the relay (which answers from its ledger and
   store without asking upstream): median and p95 of ``--polls`` sequential requests on one connection.
2. ``GET /videos/{id}/content``, the whole video, streamed to a file: upstream vs the relay's copy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from bench_server import fake_job, server_process  # the same fake large job and server launcher
from sora_nb.server.records import JobRecord
from sora_nb.server.relay.settings import UPSTREAM_KEY_ENV
from sora_nb.server.relay.storage import SqliteStorage
from sora_nb.server.relay.users import add_user
from sora_nb.server.store import safe_key, write_json_atomic

MiB = 2**20
KEY = "sk-bench-upstream"


def seed_relay(relay_dir: Path, upstream_id: str) -> tuple[str, str]:
    """A student and one video of theirs that shows ``upstream_id``, as a relay that stopped mid-job leaves
    them: (token, video ID)."""
    storage = SqliteStorage(relay_dir)
    token = add_user(storage, "bench", budget=None, admin=False)
    video_id = "video_relaybench"
    request = {"prompt": "bench", "model": "sora-2", "size": "1280x720", "seconds": "4"}
    admission = storage.admit(video_id, "bench", "bench-fp", request, 0.4, share=True, now=time.time())
    storage.update_upstream(admission.upstream_key, upstream_id=upstream_id, status="in_progress")
    storage.close()
    job = JobRecord(
        id=video_id, kind="generate", model="sora-2", prompt="bench", width=1280, height=720, seconds=4, fps=24,
        seed=0, created_at=time.time(), scene_prompt="bench",
    )  # fmt: skip
    directory = relay_dir / "jobs" / safe_key(video_id)
    directory.mkdir(parents=True)
    write_json_atomic(directory / "job.json", asdict(job))
    return token, video_id


def wait_completed(client: httpx.Client, video_id: str) -> float:
    """Seconds until the relay reports the video completed (its one fetch from upstream done)."""
    start = time.perf_counter()
    while client.get(f"/videos/{video_id}").json()["status"] != "completed":
        time.sleep(0.05)
    return time.perf_counter() - start


def status_latency(client: httpx.Client, video_id: str, polls: int) -> tuple[float, float]:
    """Median and p95 milliseconds of ``GET /videos/{id}``."""
    client.get(f"/videos/{video_id}").raise_for_status()  # warm the connection
    times = []
    for _ in range(polls):
        start = time.perf_counter()
        client.get(f"/videos/{video_id}").raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def download(client: httpx.Client, video_id: str, dest: Path) -> tuple[float, int]:
    """Seconds and bytes of streaming the whole video to ``dest``."""
    start = time.perf_counter()
    size = 0
    with client.stream("GET", f"/videos/{video_id}/content") as answer, dest.open("wb") as f:
        answer.raise_for_status()
        for chunk in answer.iter_bytes(MiB):
            f.write(chunk)
            size += len(chunk)
    return time.perf_counter() - start, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--polls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        root = Path(tmp)
        upstream_id = fake_job(root / "upstream", args.size_mib)
        token, video_id = seed_relay(root / "relay", upstream_id)
        os.environ[UPSTREAM_KEY_ENV] = KEY
        with server_process(root / "upstream", KEY) as (upstream_url, _):
            relay_flags = ("--engine", "relay", "--upstream", upstream_url)
            with server_process(root / "relay", "unused-by-the-relay", *relay_flags) as (relay_url, _):
                direct = httpx.Client(base_url=upstream_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
                relayed = httpx.Client(base_url=relay_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
                fill = wait_completed(relayed, video_id)
                lat = {"direct": status_latency(direct, upstream_id, args.polls)}
                lat["relay"] = status_latency(relayed, video_id, args.polls)
                runs = {"direct": download(direct, upstream_id, root / "direct.mp4")}
                runs["relay"] = download(relayed, video_id, root / "relay.mp4")
                direct.close()
                relayed.close()
    print(f"## The class relay's overhead ({args.size_mib} MiB video, {args.polls} status polls)\n")
    print(f"relay's first fetch of the video from upstream (once, on start): {fill:.2f} s\n")
    print("| path | status median ms | status p95 ms | download s | download MiB/s |")
    print("|---|---|---|---|---|")
    for name in ("direct", "relay"):
        (median, p95), (seconds, size) = lat[name], runs[name]
        assert size == args.size_mib * MiB, f"{name}: {size} bytes"
        print(f"| {name} | {median:.2f} | {p95:.2f} | {seconds:.2f} | {size / MiB / seconds:.0f} |")
    ratio = lat["relay"][0] / lat["direct"][0]
    print(f"\nrelay/direct: status {ratio:.2f}x, download {runs['relay'][0] / runs['direct'][0]:.2f}x")


if __name__ == "__main__":
    main()
