"""The server's settings: light to import (the CLI starts fast), and the defaults that depend on where it listens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sora_nb.server.config import DEFAULT_KEY, ServerConfig

HEAVY = ("starlette", "uvicorn", "av", "PIL", "numpy", "httpx")


def _modules_after(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; which HEAVY modules were loaded before and after it."""
    script = (
        "import json, sys\n"
        "import sora_nb\n"  # the client package, which every sora_nb.* import loads first
        f"before = {{m for m in {HEAVY!r} if m in sys.modules}}\n"
        f"{code}\n"
        f"after = {{m for m in {HEAVY!r} if m in sys.modules}}\n"
        "print(json.dumps({'before': sorted(before), 'added': sorted(after - before)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize(
    "code", ["import sora_nb.server.config", "import sora_nb.server", "import sora_nb.cli; sora_nb.cli._parser()"]
)
def test_settings_load_without_the_web_framework_or_media_libraries(code: str) -> None:
    loaded = _modules_after(code)
    assert loaded["added"] == []
    assert not {"starlette", "uvicorn", "av", "numpy"} & set(loaded["before"])


def test_the_server_itself_loads_on_first_use() -> None:
    loaded = _modules_after("import sora_nb.server as server; server.start")
    assert {"starlette", "uvicorn"} <= set(loaded["added"])


def test_loopback_gets_the_public_key_and_remote_inputs() -> None:
    bound = ServerConfig().bound("127.0.0.1")
    assert bound.key == DEFAULT_KEY and bound.allow_remote_inputs is True


def test_beyond_loopback_a_random_key_and_no_remote_inputs() -> None:
    bound = ServerConfig().bound("192.168.1.20")
    assert bound.key and bound.key != DEFAULT_KEY and bound.allow_remote_inputs is False
    with pytest.raises(ValueError, match="is public"):
        ServerConfig(key=DEFAULT_KEY).bound("192.168.1.20")


@pytest.mark.parametrize("url", ["ftp://host", "http://0.0.0.0:8000", "http://host/?q=1", "http://user@host"])
def test_an_unusable_public_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="--public-url"):
        ServerConfig(public_url=url).bound("127.0.0.1")
