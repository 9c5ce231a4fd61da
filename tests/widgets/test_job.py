"""sora_nb.widgets.job: the VideoJob widget's state machine, reprs and chunked video transfer, against the real
local server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sora_nb
from sora_nb import engine as engines
from sora_nb.progress import describe
from sora_nb.server import ServerHandle
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from sora_nb.widgets import _base
from sora_nb.widgets.job import VideoJob

Configured = Callable[..., ServerHandle]


def wait_status(w: VideoJob, statuses: tuple[str, ...], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while w.status not in statuses:
        assert time.monotonic() < deadline, f"widget still {w.status}"
        time.sleep(0.02)


def test_generate_returns_at_once_and_the_state_follows_the_job(configured: Configured) -> None:
    configured(speed=2.0)
    seen: list[tuple[str, int]] = []
    started = time.perf_counter()
    w = sora_nb.generate("a lighthouse in fog", size="1280x720", seconds=4)
    assert time.perf_counter() - started < 0.05
    w.observe(lambda change: seen.append((w.status, w.progress)), names=["status", "progress"])
    w.result(timeout=60)
    wait_status(w, ("completed",))
    statuses = [status for status, _ in seen]
    assert statuses.index("in_progress") < statuses.index("completed")
    rising = [progress for status, progress in seen if status == "in_progress" and progress >= 0]
    assert rising == sorted(rising) and len(set(rising)) >= 2
    assert (w.width, w.height, w.size, w.seconds) == (1280, 720, "1280x720", "4")
    assert w.video_id == w.id and w.backend == "127.0.0.1" and not w.local
    assert w.poster.startswith("data:image/jpeg;base64,") and len(w.poster) < 60_000
    assert w.started_at > 0 and w.finished_at >= w.started_at and w.error_code == ""


def test_failed_job_shows_code_message_and_hint_then_retry(configured: Configured) -> None:
    handle = configured()
    w = sora_nb.generate("a moderation-test scene")
    wait_status(w, ("failed",))
    assert w.error_code == "moderation_blocked"
    # what happened, then what to do, once: the local server's message already says to rephrase, so no hint
    assert "moderation" in w.error_message and "Rephrase the prompt" in w.error_message and w.error_hint == ""
    assert w.error_message == w.job.error.message and str(w.job.error) == w.error_message  # type: ignore[union-attr]
    assert len(handle.app.store.jobs()) == 1
    w.retry()
    wait_status(w, ("failed",))
    assert len(handle.app.store.jobs()) == 2  # a new job only because Retry was pressed


def test_a_job_waiting_for_a_busy_engine_says_why_until_it_is_accepted(configured: Configured) -> None:
    handle = configured(dialect="aquiles", speed=4.0)  # Aquiles runs one job at a time and refuses the rest
    sora_nb.configure(max_concurrency=4)
    widgets = [sora_nb.generate(f"a lighthouse at dusk, take {i}") for i in range(3)]
    seen: dict[int, list[tuple[str, str, str]]] = {i: [] for i in range(3)}
    lines: list[str] = []  # the text progress line of a job while it waits
    for i, w in enumerate(widgets):
        w.observe(lambda _, i=i, w=w: seen[i].append((w.status, w.waiting, w.video_model)), names=["status", "waiting"])
        w.job.observe(lambda job: lines.append(describe(job)) if job.note else None)
    for w in widgets:
        w.result(timeout=180)
        wait_status(w, ("completed",))
    assert engines._engine is not None
    note = f"waiting: the engine at {engines._engine.client.wire.server} runs 1 job at a time"
    served = DEFAULT_SERVED_MODEL  # no model asked for: the engine's served one, shown before any record
    waited = [[(s, n) for s, n, _ in changes] for changes in seen.values() if ("queued", note, served) in changes]
    assert waited, seen  # at least one of the three was refused while another ran
    assert lines and all(line.startswith("Queued") and line.endswith(f"({note})") for line in lines)
    for changes in waited:  # the note goes once the engine takes the job: it renders with none
        accepted = [k for k, (status, _) in enumerate(changes) if status in ("in_progress", "downloading", "completed")]
        assert accepted and changes.index(("queued", note)) < accepted[0]
        assert all(changes[k][1] == "" for k in accepted)
    assert all(w.waiting == "" and w.job.note is None for w in widgets)
    assert len(handle.app.store.jobs()) == 3  # one accepted create each


def test_cancel_from_the_widget(configured: Configured) -> None:
    configured(speed=0.2)
    w = sora_nb.generate("cancel me from the widget")
    wait_status(w, ("queued", "in_progress"))
    w._on_message(w, {"type": "cancel"}, [])
    wait_status(w, ("cancelled",))
    assert w.error_code == "JobCancelledError" and w.error_hint == "A retry starts a new job."
    assert w.error_message == "the job was cancelled"


def test_attach_and_remix_widgets(configured: Configured) -> None:
    configured()
    first = sora_nb.generate("a copper kettle")
    first.result(timeout=60)
    assert first.id is not None
    attached = sora_nb.attach(first.id)
    assert attached.result(timeout=30) == first.path
    remixed = first.remix("a copper kettle, steaming")
    assert remixed.result(timeout=60).is_file()
    assert remixed.video is not None and remixed.video.remixed_from == first.id


def test_reprs_are_deterministic_and_honest(configured: Configured) -> None:
    configured()
    w = sora_nb.generate("a <b>bold</b> prompt", size="1280x720", seconds=4)
    assert repr(w) in ("VideoJob(id=None, status='pending')",) or re.fullmatch(r"VideoJob\(id=.*\)", repr(w))
    shown = w._repr_mimebundle_()[0]["text/plain"]  # as a cell shows it: the request, whatever the job's state
    assert shown == "VideoJob('a <b>bold</b> prompt', size='1280x720', seconds='4')"
    w.result(timeout=60)
    wait_status(w, ("completed",))
    assert repr(w) == f"VideoJob(id={w.id!r}, status='completed')"
    data, _ = w._repr_mimebundle_()
    assert data["text/plain"] == shown
    assert " at 0x" not in data["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in data
    page = data["text/html"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "status: completed" in page and w.id in page  # type: ignore[operator]
    assert "<img" in page and "data:video" not in page


def test_video_travels_in_chunks_of_at_most_the_limit(configured: Configured, monkeypatch: pytest.MonkeyPatch) -> None:
    configured()
    w = sora_nb.generate("chunked transfer")
    path = w.result(timeout=60)
    monkeypatch.setattr(_base, "CHUNK_BYTES", 64 * 1024)
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    monkeypatch.setattr(w, "send", lambda content, buffers=None: sent.append((content, list(buffers or []))))
    w._on_message(w, {"type": "video"}, [])
    size = path.stat().st_size
    assert len(sent) == -(-size // (64 * 1024)) >= 3
    assert all(len(buffers[0]) <= 64 * 1024 for _, buffers in sent)
    assert [content["part"] for content, _ in sent] == list(range(len(sent)))
    assert {content["count"] for content, _ in sent} == {len(sent)} and sent[0][0]["size"] == size
    assert b"".join(buffers[0] for _, buffers in sent) == path.read_bytes()


def test_state_updates_are_throttled(configured: Configured) -> None:
    configured(speed=0.3)
    w = sora_nb.generate("a busy job")
    wait_status(w, ("queued", "in_progress"))
    pushes: list[float] = []
    original = w._push

    def counting() -> None:
        pushes.append(time.monotonic())
        original()

    w._push = counting  # type: ignore[method-assign]
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        w._on_job(w.job)  # far more often than 10 per second
        time.sleep(0.001)
    time.sleep(0.2)
    assert 5 <= len(pushes) <= 12
    w.cancel()


def test_no_secret_or_signed_url_in_synced_state(configured: Configured) -> None:
    handle = configured(dialect="cdn-redirect", key="distinctive-secret-key-77")
    w = sora_nb.generate("keep it secret")
    w.result(timeout=60)
    wait_status(w, ("completed",))
    state = json.dumps({k: v for k, v in w.get_state().items() if k != "embedded"}, default=str)
    assert handle.key not in state and "sig=" not in state and "/cdn/" not in state
    assert handle.key not in repr(w) and handle.key not in w._html()


def test_embed_keeps_the_video_in_the_notebook(configured: Configured) -> None:
    configured()
    w = sora_nb.generate("embedded clip", embed=True)
    path = w.result(timeout=60)
    wait_status(w, ("completed",))
    assert w.embedded == path.read_bytes()
    data, _ = w._repr_mimebundle_()
    assert "data:video/mp4;base64," in data["text/html"]
    plain = sora_nb.generate("embedded clip")
    plain.result(timeout=10)
    wait_status(plain, ("completed",))
    assert plain.embedded == b""


def test_outside_jupyter_generate_prints_a_text_progress_line(
    make_server: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    handle = make_server(speed=2.0)
    script = "import sora_nb\nw = sora_nb.generate('a terminal run')\nprint(w.result(timeout=60))\n"
    env = {
        **os.environ,
        "SORA_NB_BASE_URL": handle.base_url,
        "SORA_NB_API_KEY": handle.key,
        "SORA_NB_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_file()
    assert "Rendering" in done.stderr or "Queued" in done.stderr
    assert "Done" in done.stderr and handle.key not in done.stderr


def test_top_level_remix_edit_extend_attach_return_widgets(configured: Configured) -> None:
    configured()
    source = sora_nb.generate("a tin robot")
    source.result(timeout=60)
    assert source.id is not None
    made = [
        sora_nb.remix(source, "a gold robot"),
        sora_nb.edit(source.id, "in sepia"),
        sora_nb.extend(source, "it walks away", seconds=4),
        sora_nb.attach(source.id, embed=True),
    ]
    assert all(isinstance(w, VideoJob) for w in made)
    for w in made:
        assert w.result(timeout=60).is_file()
    assert made[3].embedded == source.path.read_bytes()  # type: ignore[union-attr]
