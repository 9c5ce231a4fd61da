"""configure() over SORA_NB_* over OPENAI_* over defaults; the key never shown; the cache dir always resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_nb.config import Settings, configure, default_cache_dir, settings

KEY = "sk-test-ZQXJ-distinctive-7741"
pytestmark = pytest.mark.usefixtures("isolated_config")


def test_defaults() -> None:
    current = settings()
    assert current == Settings()
    assert current.base_url is None
    assert current.api_key is None
    assert current.provider is None  # detected from what the base URL serves
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
    assert settings().provider is None


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
