"""Backends from the settings: a base URL with the provider's prefix, the environment, the key never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_nb.config import Settings, configure, settings
from sora_nb.engine import resolve_backend

KEY = "sk-test-ZQXJ-distinctive-7741"
pytestmark = pytest.mark.usefixtures("isolated_config")


def test_backend_from_base_url() -> None:
    # provider="openai": the official profile, asked nothing (unset, the server is asked: test_discovery.py)
    backend = resolve_backend(configure(base_url="https://gw.example.com", api_key=KEY, provider="openai"))
    assert backend.base_url == "https://gw.example.com/v1"
    assert backend.label == "gw.example.com"
    assert backend.identity == "https://gw.example.com/v1"
    assert backend.api_key == KEY
    assert backend.provider == "openai"
    assert backend.local is False and backend.detected is False and backend.models == ()
    assert KEY not in repr(backend)


def test_an_unset_provider_asks_the_server_and_falls_back_to_openai(tmp_path: Path) -> None:
    # nothing listens on loopback port 9: nothing is identified, and nothing is remembered
    backend = resolve_backend(configure(base_url="http://127.0.0.1:9", api_key=KEY, cache_dir=tmp_path))
    assert (backend.provider, backend.label, backend.detected, backend.settled) == ("openai", "127.0.0.1", False, False)
    assert KEY not in repr(backend) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("provider", "url", "expected"),
    [
        ("azure", "https://res.openai.azure.com", "https://res.openai.azure.com/openai/v1"),
        ("azure", "https://res.openai.azure.com/openai/v1/", "https://res.openai.azure.com/openai/v1"),
        ("openai", "https://gw.example:8443/api/", "https://gw.example:8443/api/v1"),
        ("openai", "http://127.0.0.1:9000/v1", "http://127.0.0.1:9000/v1"),
        ("new-api", "https://relay.example/v1", "https://relay.example/v1"),
    ],
)
def test_backend_applies_the_provider_prefix(provider: str, url: str, expected: str) -> None:
    backend = resolve_backend(Settings(base_url=url, provider=provider))
    assert backend.base_url == expected
    assert backend.provider == provider
    assert backend.label == url.split("//")[1].split("/")[0].split(":")[0]
    assert backend.identity == expected
    assert backend.api_key is None


def test_backend_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://fallback.example")
    monkeypatch.setenv("SORA_NB_PROVIDER", "azure")
    backend = resolve_backend()
    assert backend.base_url == "https://fallback.example/openai/v1"
    assert backend.label == "fallback.example"


def test_bad_provider_from_environment_fails_on_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORA_NB_PROVIDER", "nope")
    with pytest.raises(ValueError, match="nope"):
        resolve_backend(Settings(base_url="https://gw.example", provider=settings().provider))
