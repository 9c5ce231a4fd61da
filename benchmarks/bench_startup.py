"""Benchmark of start-up: how long ``sora-nb cache path`` and ``import sora_nb`` take, and what they load.

Run: ``python benchmarks/bench_startup.py`` (``--runs N``; ``--vs DIR`` also times the ``src`` of another checkout,
e.g. a worktree of an older commit, run by turns with this one so drift hits both alike). Prints a Markdown
table; the numbers recorded in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("anywidget", "ipywidgets", "httpx", "av", "PIL", "numpy", "starlette", "uvicorn")
COMMANDS = {
    "sora-nb cache path": "import sys; from sora_nb.cli import main; sys.argv = ['sora-nb', 'cache', 'path']; main()",
    "import sora_nb": "import sora_nb",
}
REPORT = "import json, sys; print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr)"


def _run(src: Path, code: str) -> tuple[float, list[str]]:
    """Wall seconds of a fresh interpreter running ``code`` against ``src``, and the heavy modules it loaded."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    script = code + "; " + REPORT.format(heavy=HEAVY)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    return seconds, json.loads(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--vs", type=Path, help="another checkout whose src/ to time by turns with this one")
    args = parser.parse_args()
    trees = {"this tree": SRC} | ({"--vs tree": args.vs / "src"} if args.vs else {})
    print("| command | tree | median wall (s) | min | max | heavy modules loaded |")
    print("|---|---|---|---|---|---|")
    for label, code in COMMANDS.items():
        times: dict[str, list[float]] = {name: [] for name in trees}
        loaded: dict[str, list[str]] = {}
        for _ in range(args.runs):
            for name, src in trees.items():  # by turns: drift in the machine's speed hits both trees alike
                seconds, heavy = _run(src, code)
                times[name].append(seconds)
                loaded[name] = heavy
        for name, runs in times.items():
            shown = ", ".join(loaded[name]) or "none"
            row = f"{statistics.median(runs):.3f} | {min(runs):.3f} | {max(runs):.3f}"
            print(f"| `{label}` | {name} | {row} | {shown} |")


if __name__ == "__main__":
    main()
