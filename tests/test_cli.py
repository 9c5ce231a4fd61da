"""The command line: `sora-nb serve` and `python -m sora_nb.server` start a real server and say where."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

URL = re.compile(r"listening on (http://\S+)")


def _launch(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    proc = subprocess.Popen(
        [*args, "--port", "0", "--data-dir", str(tmp_path), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl+C" in line:
            break
    match = URL.search("".join(lines))
    assert match, "".join(lines)
    return proc, match.group(1), lines


@pytest.mark.parametrize(
    "command",
    [[str(Path(sys.executable).with_name("sora-nb")), "serve"], [sys.executable, "-m", "sora_nb.server"]],
    ids=["sora-nb serve", "python -m sora_nb.server"],
)
def test_serve_prints_url_and_key_and_answers(command: list[str], tmp_path: Path) -> None:
    proc, url, lines = _launch(command, tmp_path)
    try:
        text = "".join(lines)
        assert url.endswith("/v1") and "key:  sora-nb-local" in text and "local preview" in text
        response = httpx.get(url + "/videos", headers={"Authorization": "Bearer sora-nb-local"})
        assert response.status_code == 200 and response.json()["object"] == "list"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_custom_key_is_not_printed(tmp_path: Path) -> None:
    secret = "cli-secret-key-123"
    proc, url, lines = _launch([sys.executable, "-m", "sora_nb.cli", "serve", "--key", secret], tmp_path)
    try:
        assert secret not in "".join(lines)
        assert httpx.get(url + "/videos", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--faults", "drop=2"], "fault"), (["--dialect", "klingon"], "invalid choice"), (["--speed", "0"], "speed")],
)
def test_bad_flags_exit_with_a_clear_message(extra: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sora_nb.cli", "serve", "--port", "0", "--data-dir", str(tmp_path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    proc, url, _ = _launch([sys.executable, "-m", "sora_nb.cli", "serve"], tmp_path)
    port = url.split(":")[-1].split("/")[0]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sora_nb.cli", "serve", "--port", port, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
        assert result.returncode == 2 and "--port 0" in result.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_cache_path_loads_no_server_widget_or_http_library(tmp_path: Path) -> None:
    heavy = ("anywidget", "ipywidgets", "httpx", "av", "PIL", "numpy", "starlette", "uvicorn", "sora_nb.server")
    script = (
        "import sys\nfrom sora_nb.cli import main\nmain(['cache', 'path'])\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    env = {**os.environ, "SORA_NB_CACHE_DIR": str(tmp_path / "c")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.splitlines() == [str(tmp_path / "c"), "[]"], done.stdout + done.stderr
