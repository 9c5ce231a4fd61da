"""Fixtures of the relay tests: a local server as the upstream (faults on, a key of its own), and relays in
front of it with users made through the ledger, as ``sora-nb users add`` makes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from sora_nb.server import ServerHandle, start
from sora_nb.server.relay.settings import UPSTREAM_KEY_ENV, RelayConfig
from sora_nb.server.relay.storage import SqliteStorage
from sora_nb.server.relay.users import add_user

UPSTREAM_KEY = "sk-upstream-TEACHERS-SECRET-7f3a9c"
UPSTREAM_FAULTS = "5xx=0.2,429=0.1,drop=0.5,retry_after=0,seed=11"


@dataclass
class Class:
    """A relay in front of an upstream, and the tokens of its users by name."""

    upstream: ServerHandle
    relay: ServerHandle
    tokens: dict[str, str]
    data_dir: Path
    seen: list[bytes] = field(default_factory=list)

    def http(self, name: str) -> httpx.Client:
        """A plain client with ``name``'s token that keeps every answer it gets in ``seen``."""

        def keep(response: httpx.Response) -> None:
            response.read()
            self.seen.append(str(response.headers).encode() + response.content)

        return httpx.Client(
            base_url=self.relay.base_url,
            headers={"Authorization": f"Bearer {self.tokens[name]}"},
            timeout=30,
            event_hooks={"response": [keep]},
        )


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerHandle]:
    """The upstream service: a local server with its own key and faults on; the relay's key in the environment."""
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    with start(speed=50, data_dir=tmp_path / "upstream", key=UPSTREAM_KEY, faults=UPSTREAM_FAULTS) as handle:
        handle.received_headers = spy_on_headers(handle)  # type: ignore[attr-defined]
        yield handle


def spy_on_headers(handle: ServerHandle) -> list[dict[str, str]]:
    """The headers of every request the server receives, from now on (its gate sees each one first)."""
    received: list[dict[str, str]] = []
    gate = handle.app.api
    denial = gate.denial

    def recording(request: Request) -> Response | None:
        received.append(dict(request.headers))
        return denial(request)

    gate.denial = recording
    return received


@pytest.fixture
def slow_upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerHandle]:
    """An upstream whose jobs take seconds (faults on too): for limits and restarts while jobs run."""
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    with start(speed=0.5, data_dir=tmp_path / "slow-upstream", key=UPSTREAM_KEY, faults=UPSTREAM_FAULTS) as handle:
        yield handle


def start_relay(upstream: ServerHandle, data_dir: Path, **options: Any) -> ServerHandle:
    """A relay in front of ``upstream`` keeping its ledger and videos in ``data_dir``."""
    options.setdefault("poll_interval", 0.05)
    return start(engine="relay", relay=RelayConfig(upstream=upstream.base_url, **options), data_dir=data_dir)


@pytest.fixture
def make_class(upstream: ServerHandle, tmp_path: Path) -> Iterator[Callable[..., Class]]:
    """Start a relay in front of ``upstream`` (or the one given) with users ``{name: budget}`` and an admin
    ``teacher``; each relay in a data directory of its own."""
    handles: list[ServerHandle] = []

    def make(users: dict[str, float | None], *, via: ServerHandle | None = None, **options: Any) -> Class:
        data_dir = tmp_path / f"relay{len(handles)}"
        storage = SqliteStorage(data_dir)
        tokens = {name: add_user(storage, name, budget=budget, admin=False) for name, budget in users.items()}
        tokens["teacher"] = add_user(storage, "teacher", budget=None, admin=True)
        storage.close()
        relay = start_relay(via or upstream, data_dir, **options)
        handles.append(relay)
        return Class(via or upstream, relay, tokens, data_dir)

    yield make
    for handle in handles:
        handle.stop()
