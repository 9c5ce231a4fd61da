"""configure() over SORA_NB_* over OPENAI_* over defaults; the key never shown; backends from a base URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sora_nb import config
from sora_nb.config import Settings, configure, default_cache_dir, resolve_backend, settings

KEY = "sk-test-ZQXJ-distinctive-7741"
VARIABLES = (
    "SORA_NB_BASE_URL",
    "SORA_NB_API_KEY",
    "SORA_NB_PROVIDER",
    "SORA_NB_CACHE_DIR",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no configure() values and none of the variables; configure() state is restored."""
    saved = dict(config._explicit)
    config._explicit.clear()
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    try:
        yield
    finally:
        config._explicit.clear()
        config._explicit.update(saved)


def test_defaults() -> None:
    current = settings()
    assert current == Settings()
    assert current.base_url is None
    assert current.api_key is None
    assert current.provider == "openai"
    assert current.cache_dir == default_cache_dir()  # always resolved
    assert current.max_concurrency == 4


@pytest.mark.parametrize(
    ("option", "sora", "openai"),
    [("base_url", "SORA_NB_BASE_URL", "OPENAI_BASE_URL"), ("api_key", "SORA_NB_API_KEY", "OPENAI_API_KEY")],
)
def test_resolution_order(monkeypatch: pytest.MonkeyPatch, option: str, sora: str, openai: str) -> None:
    assert getattr(settings(), option) is None
    monkeypatch.setenv(openai, "from-openai")
    assert getattr(settings(), option) == "from-openai"
    monkeypatch.setenv(sora, "from-sora")
    assert getattr(settings(), option) == "from-sora"
    configure(**{option: "explicit"})
    assert getattr(settings(), option) == "explicit"
    configure(**{option: None})  # None resets to the environment
    assert getattr(settings(), option) == "from-sora"
    monkeypatch.delenv(sora)
    assert getattr(settings(), option) == "from-openai"


def test_empty_variable_falls_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORA_NB_API_KEY", "")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert settings().api_key == KEY


def test_provider_and_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SORA_NB_PROVIDER", "azure")
    monkeypatch.setenv("SORA_NB_CACHE_DIR", str(tmp_path / "env-cache"))
    current = settings()
    assert current.provider == "azure"
    assert current.cache_dir == tmp_path / "env-cache"
    assert configure(provider="new-api", cache_dir=str(tmp_path / "mine")).provider == "new-api"
    assert settings().cache_dir == tmp_path / "mine"
    assert isinstance(settings().cache_dir, Path)


def test_a_cache_without_a_root_is_the_configured_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sora_nb.cache import VideoCache

    monkeypatch.setenv("SORA_NB_CACHE_DIR", str(tmp_path / "env-cache"))
    assert VideoCache().root == tmp_path / "env-cache"
    configure(cache_dir=tmp_path / "mine")
    assert VideoCache().root == settings().cache_dir == tmp_path / "mine"


def test_cache_dir_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert configure(cache_dir="~/videos").cache_dir == tmp_path / "videos"


def test_configure_returns_resolved_settings_and_keeps_other_options() -> None:
    current = configure(model="sora-2", max_concurrency=2, timeout=5.0)
    assert (current.model, current.max_concurrency, current.timeout) == ("sora-2", 2, 5.0)
    configure(model="sora-2-pro")
    assert (settings().model, settings().max_concurrency) == ("sora-2-pro", 2)
    configure(model=None, max_concurrency=None, timeout=None)
    assert settings() == Settings()


def test_unknown_option_is_a_type_error_listing_names() -> None:
    with pytest.raises(TypeError) as caught:
        configure(base_ur="https://x.example", apikey="k")
    message = str(caught.value)
    assert "apikey" in message
    assert "base_ur" in message
    for name in ("base_url", "api_key", "provider", "cache_dir", "model", "max_concurrency", "deadline"):
        assert name in message
    assert settings() == Settings()  # nothing was applied


def test_bad_provider_is_a_value_error_listing_choices() -> None:
    with pytest.raises(ValueError, match="azure") as caught:
        configure(provider="sorta-openai")
    assert "sorta-openai" in str(caught.value)
    assert settings().provider == "openai"


def test_bad_max_concurrency() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        configure(max_concurrency=0)
    assert settings().max_concurrency == 4


def test_repr_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(api_key=KEY, base_url="https://gw.example")
    shown = repr(settings())
    assert KEY not in shown
    assert "api_key='***'" in shown
    assert "https://gw.example" in shown
    assert KEY not in str(settings())
    configure(api_key=None)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert KEY not in repr(settings())
    assert "***" in repr(settings())


def test_repr_without_a_key() -> None:
    assert "api_key=None" in repr(settings())


def test_backend_from_base_url() -> None:
    backend = resolve_backend(configure(base_url="https://gw.example.com", api_key=KEY))
    assert backend.base_url == "https://gw.example.com/v1"
    assert backend.label == "gw.example.com"
    assert backend.identity == "https://gw.example.com/v1"
    assert backend.api_key == KEY
    assert backend.provider == "openai"
    assert backend.local is False
    assert KEY not in repr(backend)


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
