"""The README's two commands, as CI runs them (.ci/run repeats the second word for word; check-ci keeps them equal).

python .ci/readme_commands.py check-ci       check that .ci/run runs the second command (the tests) as written
python .ci/readme_commands.py first          run the first command in a fresh virtual environment and
                                             check that it made a real MP4 (H.264 + AAC)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- the two commands: CI runs them (.ci/run and .ci/readme_commands.py) -->"


def commands() -> list[str]:
    """The two command lines of the fenced block right after the marker in README.md."""
    text = (ROOT / "README.md").read_text()
    if MARKER not in text:
        raise SystemExit(f"README.md has lost the marker {MARKER!r}")
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    if block is None:
        raise SystemExit("no ```bash block follows the marker in README.md")
    lines = [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 2:
        raise SystemExit(f"README.md should show exactly two commands, found {len(lines)}: {lines}")
    return lines


def run_first() -> None:
    command = commands()[0]
    with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SORA_NB_", "OPENAI_", "PYTHON"))},
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "VIRTUAL_ENV": str(venv),
            "SORA_NB_CACHE_DIR": str(Path(tmp) / "cache"),  # a first run: nothing cached yet
        }
        print(f"== in a fresh venv: {command}", flush=True)
        done = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False
        )
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
        if done.returncode != 0:
            raise SystemExit(f"the README's first command failed with exit status {done.returncode}")
        path = Path(done.stdout.strip().splitlines()[-1])
        if not path.is_file() or Path(tmp) not in path.parents:
            raise SystemExit(f"the first command's last line is not the cached video's path: {path}")
        probe = "import av, sys; c = av.open(sys.argv[1]); print(sorted(s.codec_context.name for s in c.streams))"
        codecs = subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe, str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()
        if codecs != "['aac', 'h264']":
            raise SystemExit(f"the video has streams {codecs}, not H.264 + AAC")
        print(f"== ok: {path.stat().st_size} bytes of H.264 + AAC at {path}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "check-ci":
        test_command = commands()[1]
        if test_command not in (ROOT / ".ci" / "run").read_text().splitlines():
            raise SystemExit(f".ci/run must run the README's test command as written: {test_command}")
    elif what == "first":
        run_first()
    else:
        raise SystemExit(__doc__)
