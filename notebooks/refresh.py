"""Run every notebook here top to bottom and save its outputs, as they are committed.

    python notebooks/refresh.py [NAME.ipynb ...]

Each runs in a fresh kernel with an empty cache (so "re-running is free" shows the first run), on the embedded
local preview server. Saved outputs stay small: widget state (the widget's JavaScript and live values) is not
kept, so a notebook on GitHub shows each widget's static HTML fallback; no video bytes are ever in outputs.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> int:
    """Execute ``path`` in place; returns its size in bytes."""
    book = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="sora-nb-notebook-") as cache:
        os.environ["SORA_NB_CACHE_DIR"] = cache
        NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    book.metadata.pop("widgets", None)
    for cell in book.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(book, path)
    return path.stat().st_size


def main(names: list[str]) -> None:
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: {refresh(path) / 1024:.1f} KiB", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
