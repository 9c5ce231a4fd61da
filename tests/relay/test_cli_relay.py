"""``sora-nb serve --engine relay`` as a teacher runs it: a process of its own, users added with the CLI while it
serves, and the upstream key in nothing it prints or logs (access log on)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from sora_nb.server import ServerHandle
from tests.helpers import wait_for
from tests.relay.conftest import UPSTREAM_KEY


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sora_nb.cli", *args], env=env, capture_output=True, text=True)


def test_the_relay_command_serves_students_and_never_prints_the_key(upstream: ServerHandle, tmp_path: Path) -> None:
    env = {**os.environ, "SORA_NB_UPSTREAM_KEY": UPSTREAM_KEY}
    data = str(tmp_path / "relay")
    command = [sys.executable, "-m", "sora_nb.cli", "serve", "--engine", "relay", "--upstream", upstream.base_url]
    command += ["--data-dir", data, "--port", "0", "--log-level", "debug"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            printed.append(line)
            if "Ctrl+C" in line:
                break
        url = re.search(r"listening on (\S+)", "".join(printed))
        assert url is not None, printed
        added = _cli("users", "add", "quinn", "--budget", "1", "--data-dir", data, env=env)  # while it serves
        token = added.stdout.strip().splitlines()[-1]
        with httpx.Client(base_url=url[1], headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            made = client.post("/videos", json={"prompt": "a tugboat"})
            assert made.status_code == 200
            assert wait_for(client, made.json()["id"])["status"] == "completed"
        listing = _cli("users", "list", "--data-dir", data, env=env).stdout
        assert "quinn: spent $0.40 of $1.00, $0.60 left" in listing
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        printed.append(out)
    text = "".join(printed)
    assert "GET /v1/videos/" in text  # the access log was on
    assert UPSTREAM_KEY not in text and token not in text


def test_the_relay_command_needs_an_upstream(tmp_path: Path) -> None:
    result = _cli("serve", "--engine", "relay", "--port", "0", "--data-dir", str(tmp_path), env=dict(os.environ))
    assert result.returncode == 2 and "the relay needs --upstream URL" in result.stderr
