"""``python -m sora_nb.server``: the same as ``sora-nb serve``."""

from __future__ import annotations

import sys

from sora_nb.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
