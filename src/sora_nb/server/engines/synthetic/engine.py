"""The synthetic engine: :func:`render` on a small thread pool behind the Engine protocol, on the simulated
schedule of :mod:`.schedule`.

The renderer is deterministic, so a request rendered before (text only, no input files) is not rendered again:
its files become hard links to the first render's where the filesystem allows it (a class running the same
notebook). Nothing ever writes into a published file (renders write a temporary file and rename it), so
deleting or expiring one job leaves the others' files intact.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sora_nb.server.engines import EngineState, FilesDone
from sora_nb.server.engines.synthetic.encode import render
from sora_nb.server.engines.synthetic.schedule import Moderation, schedule, state_at
from sora_nb.server.engines.synthetic.spec import RenderCancelled, RenderError, RenderResult, RenderSpec
from sora_nb.server.records import ASSETS, JobRecord

log = logging.getLogger("sora_nb.server")

_Earlier = tuple[Future[RenderResult], Path]  # the first render of a spec, and the directory it wrote


def _share(source: Path, target: Path) -> None:
    """Give ``target`` the bytes of ``source``: a hard link (no second copy) where the filesystem allows one."""
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:  # no hard links here (FAT, some network shares) or across devices: copy
        shutil.copyfile(source, target)


def _reusable(spec: RenderSpec) -> bool:
    return spec.image is None and spec.source is None


class SyntheticEngine:
    """Renders on ``workers`` threads; ``speed`` scales the simulated schedule; prompts holding one of
    ``blocked_words`` fail moderation (and are not rendered)."""

    def __init__(self, *, speed: float = 1.0, blocked_words: tuple[str, ...] = (), workers: int = 2) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0 (1 = default pace, 10 = ten times faster)")
        self.speed = speed
        self.moderation = Moderation(blocked_words)
        self._lock = threading.RLock()
        self._cancel: dict[str, threading.Event] = {}
        self._renders: dict[RenderSpec, _Earlier] = {}  # first render of each reusable spec
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sora-nb-render")

    def admit(self, job: JobRecord) -> None:
        """Schedule ``job`` and check its prompt against the moderation list."""
        schedule(job, self.speed)
        job.blocked_word = self.moderation.first_blocked(job.prompt)

    def state(self, job: JobRecord, now: float) -> EngineState:
        """Where ``job`` stands at ``now`` on its schedule."""
        return state_at(job, now)

    @staticmethod
    def _spec(job: JobRecord, directory: Path) -> RenderSpec:
        text = job.prompt
        if job.characters:
            text = f"{text} (featuring {', '.join(job.characters)})"
        if job.gen_params:  # an engine dialect's open-model fields, on the caption so a viewer sees they arrived
            text = f"{text} [{', '.join(f'{k}={v}' for k, v in sorted(job.gen_params.items()))}]"
        return RenderSpec(
            prompt=text,
            width=job.width,
            height=job.height,
            seconds=job.seconds,
            fps=job.fps,
            seed=job.seed,
            mode=job.kind,
            scene_prompt=job.scene_prompt if job.kind in ("remix", "extend") else None,
            image=directory / "input.png" if job.has_image else None,
            source=directory / "source.mp4" if job.has_source else None,
        )

    def start(self, job: JobRecord, directory: Path, done: FilesDone) -> None:
        """Render ``job`` (or copy an identical earlier render) into ``directory``; a blocked prompt is not rendered."""
        if job.blocked_word is not None:
            return
        spec = self._spec(job, directory)
        cancel = threading.Event()
        with self._lock:
            self._cancel[job.id] = cancel
            earlier = self._renders.get(spec) if _reusable(spec) else None
            future = self._pool.submit(self._render_or_copy, spec, directory, earlier, cancel.is_set)
            if _reusable(spec) and earlier is None:
                self._renders[spec] = (future, directory)
        future.add_done_callback(lambda f: self._finished(job.id, spec, directory, f, done))

    @staticmethod
    def _render_or_copy(
        spec: RenderSpec, out: Path, earlier: _Earlier | None, cancelled: Callable[[], bool]
    ) -> RenderResult:
        if earlier is not None:
            first, source = earlier
            try:
                result = first.result()  # waits while that render runs (it was queued before this task)
                if cancelled():  # this job was deleted meanwhile: leave no directory behind
                    raise RenderCancelled("cancelled")
                out.mkdir(parents=True, exist_ok=True)
                paths = {}
                for variant, (name, _) in ASSETS.items():
                    tmp = out / f".{name}.{secrets.token_hex(4)}.part"
                    _share(source / name, tmp)
                    paths[variant] = tmp.replace(out / name)
                return RenderResult(**paths, frames=result.frames, duration=result.duration)
            except (RenderError, OSError):  # that job failed, or its files are gone: render this one
                for leftover in out.glob(".*.part"):
                    leftover.unlink(missing_ok=True)
            except RenderCancelled:
                if cancelled():
                    raise
        return render(spec, out, cancelled=cancelled)

    def _finished(
        self, job_id: str, spec: RenderSpec, directory: Path, future: Future[RenderResult], done: FilesDone
    ) -> None:
        with self._lock:
            if self._cancel.pop(job_id, None) is None or future.cancelled():  # deleted, or the pool shut down
                return
            exc = future.exception()
            if isinstance(exc, RenderCancelled):
                return
            if exc is None and _reusable(spec):  # the source of later copies, if none is left
                self._renders.setdefault(spec, (future, directory))
        if exc is not None:
            log.error("render of %s failed: %s", job_id, exc)
            done(job_id, str(exc) if isinstance(exc, RenderError) else "the local renderer failed; see the server log")
        else:
            done(job_id, None)

    def cancel(self, job_id: str) -> None:
        """Cancel the render of a job being deleted (a copy waiting for an earlier render gives up too)."""
        with self._lock:
            cancel = self._cancel.pop(job_id, None)
            if cancel is not None:
                cancel.set()

    def release(self, directory: Path) -> None:
        """Copy later identical requests from the files in ``directory`` no more (they are going away)."""
        with self._lock:
            self._renders = {spec: first for spec, first in self._renders.items() if first[1] != directory}

    def close(self) -> None:
        """Cancel running renders and stop the pool (unfinished jobs render again on the next start)."""
        with self._lock:
            for event in self._cancel.values():
                event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
