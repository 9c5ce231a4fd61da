"""The fault matrix: every fault mode of the local server (and a restart, a killed client, expiry, a failed job)
through the public API, in the dialects that matter. For each case: the outcome, the creates the server saw
(never more than one), the video bytes it sent against the file's size, and the cache afterwards (no partial or
invalid file is ever presented as good)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import sora_nb
from sora_nb import config
from sora_nb.client import AsyncVideosClient
from sora_nb.server import ServerHandle, start
from tests.conftest import PROVIDER_FOR_DIALECT
from tests.helpers import client_for, wait_for, wait_for_images

MAGIC = {"video.mp4": (4, b"ftyp"), "thumbnail.webp": (8, b"WEBP"), "spritesheet.jpg": (0, b"\xff\xd8")}


@dataclass
class Setup:
    """A server, sora_nb configured for it (fresh cache), and what a scenario needs."""

    handle: ServerHandle
    cache_dir: Path
    tmp: Path
    make: Callable[..., ServerHandle]
    env: dict[str, str] = field(default_factory=dict)

    def creates(self) -> int:
        return len(self.handle.app.store.jobs())

    def configure(self, handle: ServerHandle, **options: Any) -> None:
        sora_nb.configure(
            base_url=handle.url if handle.dialect == "azure" else handle.base_url,
            api_key=handle.key,
            provider=PROVIDER_FOR_DIALECT[handle.dialect],
            cache_dir=self.cache_dir,
            **options,
        )
        self.env = {
            "SORA_NB_BASE_URL": handle.base_url,
            "SORA_NB_API_KEY": handle.key,
            "SORA_NB_CACHE_DIR": str(self.cache_dir),
        }


@pytest.fixture
def setup(make_server: Callable[..., ServerHandle], tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    saved = dict(config._explicit)

    def make(**server_options: Any) -> Setup:
        handle = make_server(**server_options)
        made = Setup(handle, tmp_path / "cache", tmp_path, make_server)
        made.configure(handle)
        return made

    yield make
    config._explicit.clear()
    config._explicit.update(saved)


def cache_report(cache_dir: Path) -> tuple[int, list[str]]:
    """(good videos, problems): a problem is a partial file or a file whose bytes are not what its name says."""
    good, problems = 0, []
    for path in sorted(cache_dir.rglob("*")) if cache_dir.exists() else []:
        if path.name.endswith(".part"):
            problems.append(f"partial {path.name}")
        elif path.name in MAGIC:
            offset, magic = MAGIC[path.name]
            if path.read_bytes()[offset : offset + len(magic)] != magic:
                problems.append(f"invalid {path.name}")
            elif path.name == "video.mp4":
                good += 1
    return good, problems


def _spawn(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ----- scenarios: each returns (outcome, the video ID the server made or None) ---------------------------------
def plain(s: Setup) -> tuple[str, str | None]:
    job = sora_nb.submit("a fox under fire")
    path = job.result(timeout=120)
    return f"video ({path.stat().st_size} bytes)", job.id


def stalled(s: Setup) -> tuple[str, str | None]:
    s.configure(s.handle, timeout=2.0)  # a download receiving nothing for 1 s is resumed
    return plain(s)


def restarted(s: Setup) -> tuple[str, str | None]:
    port = int(s.handle.url.rsplit(":", 1)[1])
    job = sora_nb.submit("a server restarts under me")
    while job.status not in ("queued", "in_progress"):
        time.sleep(0.01)
    s.handle.stop()
    time.sleep(0.5)  # polls meet a closed port meanwhile
    s.handle = start(port=port, data_dir=s.handle.data_dir, speed=2.0)
    try:
        path = job.result(timeout=120)
    finally:
        s.handle.stop()
    return f"video after a restart ({path.stat().st_size} bytes)", job.id


def killed_client(s: Setup) -> tuple[str, str | None]:
    killed = _spawn(
        """
        import os, time, sora_nb
        job = sora_nb.submit("survives a kernel restart")
        while job.id is None:
            time.sleep(0.01)
        time.sleep(0.3)
        print(job.id, flush=True)
        os._exit(9)   # the kernel dies mid-poll
        """,
        s.env,
    )
    first_id = killed.communicate(timeout=60)[0].strip()
    assert killed.returncode == 9 and first_id
    resumed = _spawn(
        """
        import sora_nb
        job = sora_nb.submit("survives a kernel restart")
        print(job.result(timeout=60), job.id, flush=True)
        """,
        s.env,
    )
    out, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err
    path, second_id = out.split()
    assert second_id == first_id and Path(path).is_file()
    return "video, re-attached by a new process through the index", first_id


def expired_before_download(s: Setup) -> tuple[str, str | None]:
    with client_for(s.handle) as client:  # made elsewhere; nobody downloads it in time
        video_id = str(client.post("/videos", json={"prompt": "left too long"}).json()["id"])
        wait_for(client, video_id, statuses=("completed",))
    time.sleep(1.2)
    with pytest.raises(sora_nb.VideoExpiredError, match="generate it again") as caught:
        sora_nb.attach(video_id).result(timeout=60)
    return type(caught.value).__name__, video_id


def expired_after_download(s: Setup) -> tuple[str, str | None]:
    _, video_id = plain(s)
    time.sleep(1.2)
    assert video_id is not None
    again = sora_nb.attach(video_id)
    path = again.result(timeout=30)
    assert again.job.cached and path.read_bytes()[4:8] == b"ftyp"
    return "the cached copy still plays after expiry", video_id


def failed(s: Setup) -> tuple[str, str | None]:
    job = sora_nb.submit("a moderation-test prompt")
    with pytest.raises(sora_nb.GenerationFailedError) as caught:
        job.result(timeout=60)
    assert caught.value.code == "moderation_blocked"
    return f"{type(caught.value).__name__}({caught.value.code})", job.id


def json_labelled_mp4(s: Setup) -> tuple[str, str | None]:
    async def early_download() -> tuple[str, str]:
        async with AsyncVideosClient(s.handle.base_url, s.handle.key) as client:
            video = await client.create("asked for too early")
            with pytest.raises(sora_nb.NotReadyError, match="instead of the file"):
                await client.download(video.id, s.cache_dir / "early" / "video.mp4")
            return "NotReadyError (a JSON body labelled video/mp4 is not a video)", video.id

    (s.cache_dir / "early").mkdir(parents=True)
    return asyncio.run(early_download())


@dataclass(frozen=True)
class Case:
    name: str
    dialect: str
    faults: str | None
    scenario: Callable[[Setup], tuple[str, str | None]]
    speed: float | None = None


CASES = [
    Case("no fault", "openai", None, plain),
    *(
        Case(f"5xx bursts + 429 everywhere ({d})", d, f"5xx=0.3,429=0.2,retry_after=0,seed={i}", plain)
        for i, d in enumerate(["openai", "json-fields", "raw-token", "azure", "new-api", "cdn-redirect"])
    ),
    Case("429 + Retry-After 1 s on half the requests", "openai", "429=0.5,retry_after=1,seed=3", plain),
    Case("connection dropped mid-download", "openai", "drop=0.5", plain),
    Case("dropped three times", "openai", "drop=0.3,times=3", plain),
    Case("dropped on the CDN after a redirect", "cdn-redirect", "drop=0.5", plain),
    Case("stall mid-download", "openai", "stall=3", stalled),
    Case("server restart mid-job", "openai", None, restarted, speed=0.5),
    Case("client killed mid-poll, then restarted", "openai", None, killed_client, speed=0.4),
    Case("expiry before download", "openai", "expire=1", expired_before_download),
    Case("expiry after download", "openai", "expire=1", expired_after_download),
    Case("failed job", "openai", None, failed),
    Case("200 with JSON labelled video/mp4", "openai", "json200", json_labelled_mp4, speed=0.2),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, setup: Callable[..., Setup], record: Callable[..., None]) -> None:
    options: dict[str, Any] = {"dialect": case.dialect, "faults": case.faults}
    if case.speed is not None:
        options["speed"] = case.speed
    s = setup(**options)
    store = s.handle.app.store
    outcome, video_id = case.scenario(s)
    creates = s.creates()
    assert creates <= 1, f"{creates} creates for one request"
    sent = size = 0
    if video_id is not None and (job := next((j for j in store.jobs() if j.id == video_id), None)) is not None:
        asset = store.asset(job, "video")
        # once expired, the server's sweep deletes its file: the cached copy holds the same bytes
        size = asset.stat().st_size if asset.exists() else sum(p.stat().st_size for p in s.cache_dir.rglob("video.mp4"))
        sent = s.handle.app.bytes_sent[(video_id, "video")]
    wait_for_images()  # they follow the video and may still be on their way (as .part files) under faults
    good, problems = cache_report(s.cache_dir)
    assert not problems, problems
    if outcome.startswith("video") or "cached copy" in outcome:
        assert good == 1 and sent >= size > 0
        if case.faults and "stall" not in case.faults:
            assert sent == size, f"{sent} bytes sent for a {size}-byte file: a resume refetched what it had"
    else:
        assert good == 0
    record(
        dialect=case.dialect,
        faults=case.faults or "-",
        outcome=outcome,
        creates=creates,
        **{"video bytes sent / file size": f"{sent} / {size}" if size else "-"},
        **{"cache after": f"{good} valid video" if good else "empty (nothing presented as good)"},
    )


def test_a_cut_download_leaves_nothing_behind(setup: Callable[..., Setup], record: Callable[..., None]) -> None:
    """A download that keeps failing gives up with DownloadError and leaves no partial file, while the job
    itself stays in the index: the next run re-attaches instead of paying again."""
    s = setup(faults="drop=0.5,times=100")
    job = sora_nb.submit("never arrives whole")
    with pytest.raises(sora_nb.DownloadError, match="nothing was kept"):
        job.result(timeout=180)
    good, problems = cache_report(s.cache_dir)
    assert good == 0 and not problems
    again = sora_nb.submit("never arrives whole")
    deadline = time.monotonic() + 30
    while again.id is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert again.id == job.id  # re-attached through the index, not created again
    again.cancel()
    assert s.creates() == 1
    record(
        dialect="openai",
        faults="drop=0.5,times=100",
        outcome="DownloadError; the job stays attachable",
        creates=1,
        **{"cache after": "empty (nothing presented as good)"},
    )
