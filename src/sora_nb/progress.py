"""A one-line text progress display of a job, for terminals, scripts and the CLI."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from sora_nb.jobs import Job

# What a person reads for each job status: here, in the widgets (injected into their common.js) and in the CLI.
WORDS = {
    "pending": "Starting",
    "queued": "Queued",
    "in_progress": "Rendering",
    "downloading": "Downloading",
    "completed": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def describe(job: Job, width: int = 24) -> str:
    """``Rendering [#########-----------]  45%  3.1 s  ETA 2.0 s`` for a job's current state."""
    progress = job.progress if job.status != "downloading" else None
    if job.status == "downloading" and job.bytes_total:
        progress = int(100 * job.bytes_done / job.bytes_total)
    filled = round(width * (progress or 0) / 100)
    bar = "#" * filled + "-" * (width - filled) if progress is not None else "." * width
    parts = [
        f"{WORDS.get(job.status, job.status):<11}",
        f"[{bar}]",
        f"{progress:>3}%" if progress is not None else "  ?%",
        f"{job.elapsed:5.1f} s",
    ]
    if job.eta is not None and job.status in ("queued", "in_progress"):
        past = job.history.jobs if job.history is not None and job.eta_source == "history" else 0
        parts.append(
            f"about {job.eta:.1f} s left (from {past} past job{'s' * (past != 1)})" if past else f"ETA {job.eta:.1f} s"
        )
    if job.cached:
        parts.append("(cached)")
    if job.note:  # a busy engine keeps it queued: say why
        parts.append(f"({job.note})")
    return "  ".join(parts)


def follow(job: Job, stream: TextIO | None = None) -> None:
    """Show the job's progress on ``stream`` (stderr) until it finishes; redraws in place on a terminal."""
    out = stream or sys.stderr
    live = out.isatty()
    changed = threading.Event()
    unsubscribe = job.observe(lambda _: changed.set())
    last = ""
    try:
        while True:
            changed.wait(0.25)
            changed.clear()
            line = describe(job)
            if live:
                out.write("\r" + line.ljust(len(last)))
            elif line[:11] != last[:11]:  # not a terminal: one line per status change
                out.write(line + "\n")
            out.flush()
            last = line
            if job.done:
                break
    finally:
        unsubscribe()
        if live:
            out.write("\n")
            out.flush()
