"""Which engine serves a base URL, asked once and remembered; the served model used and checked; each engine
profile end to end over loopback, configured by name and detected (issue 14 items 1, 2 and 6)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sora_nb
from sora_nb import cli, errors
from sora_nb import engine as engines
from sora_nb.config import Settings
from sora_nb.discovery import MAX_AGE, STATE_FILE, TITLES
from sora_nb.engine import resolve_backend
from sora_nb.providers import PROVIDERS
from sora_nb.server import ServerHandle
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from tests.conftest import ENGINE_DIALECTS
from tests.helpers import mp4_boxes

Configured = Callable[..., ServerHandle]
MakeServer = Callable[..., ServerHandle]
ASYNC_ENGINES = ("sglang", "vllm-omni", "aquiles", "unsloth", "omlx")  # LocalAI is synchronous: another item
PROBES = ("/v1/models", "/models", "/server_info", "/api/health", "/readyz", "/version", "/health")


class Seen:
    """The paths a local server received, counted on the server side (wrapping its API app)."""

    def __init__(self, handle: ServerHandle) -> None:
        self.paths: list[str] = []
        inner = handle.app.api

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            self.paths.append(scope["path"])
            await inner(scope, receive, send)

        handle.app.api = counting  # type: ignore[assignment]

    @property
    def probes(self) -> list[str]:
        return [path for path in self.paths if path in PROBES]

    @property
    def creates(self) -> int:
        return sum(1 for path in self.paths if path.rstrip("/").endswith("/videos"))


@pytest.fixture
def detecting(configured: Configured) -> Iterator[Callable[..., ServerHandle]]:
    """``configured``, but with no provider: sora_nb has to find out which engine it talks to."""

    def setup(**options: Any) -> ServerHandle:
        handle = configured(**options)
        sora_nb.configure(provider=None)
        return handle

    yield setup


def detect(handle: ServerHandle, cache: Path, *, key: str | None = "given") -> engines.Backend:
    return resolve_backend(
        Settings(base_url=handle.base_url, api_key=handle.key if key == "given" else key, cache_dir=cache)
    )


def remembered(cache: Path) -> dict[str, Any]:
    entries: dict[str, Any] = json.loads((cache / STATE_FILE).read_text())["backends"]
    return entries


@pytest.mark.parametrize("dialect", ENGINE_DIALECTS)
def test_each_engine_is_identified_from_what_it_serves(make_server: MakeServer, tmp_path: Path, dialect: str) -> None:
    handle = make_server(dialect=dialect)
    seen = Seen(handle)
    backend = detect(handle, tmp_path / "cache")
    host = handle.url.split("//")[1]
    assert backend.provider == dialect and backend.detected and backend.settled
    assert backend.label == f"{TITLES[dialect]} · {host}" and backend.engine == TITLES[dialect]
    assert backend.models == (DEFAULT_SERVED_MODEL,)
    assert seen.probes and seen.creates == 0
    entry = remembered(tmp_path / "cache")[backend.identity]
    assert entry["provider"] == dialect and entry["models"] == [DEFAULT_SERVED_MODEL]


@pytest.mark.parametrize("dialect", ["openai", "json-fields", "new-api"])
def test_a_gateway_is_the_official_profile_and_keeps_its_label(
    make_server: MakeServer, tmp_path: Path, dialect: str
) -> None:
    handle = make_server(dialect=dialect)
    backend = detect(handle, tmp_path / "cache")
    assert (backend.provider, backend.label, backend.models, backend.engine) == ("openai", "127.0.0.1", (), "")
    assert backend.detected and backend.settled
    assert remembered(tmp_path / "cache")[backend.identity]["provider"] == "openai"


def test_detection_is_remembered_so_the_second_run_sends_no_probe(make_server: MakeServer, tmp_path: Path) -> None:
    handle = make_server(dialect="vllm-omni")
    seen = Seen(handle)
    first = detect(handle, tmp_path / "cache")
    probes = len(seen.probes)
    second = detect(handle, tmp_path / "cache")
    assert probes >= 1 and len(seen.probes) == probes  # nothing more was asked
    assert second == first and second.provider == "vllm-omni"
    handle.stop()  # what it serves is known without asking it
    assert detect(handle, tmp_path / "cache").provider == "vllm-omni"


def test_a_job_sends_no_probe_once_the_engine_is_known(detecting: Configured) -> None:
    handle = detecting(dialect="sglang")
    seen = Seen(handle)
    assert sora_nb.submit("a kite over dunes").result(timeout=60).is_file()
    asked = len(seen.probes)
    engines._engine = None  # as a new process would: a fresh engine resolves its backend again
    assert sora_nb.submit("a kite over dunes, again", new=True).result(timeout=60).is_file()
    assert asked >= 1 and len(seen.probes) == asked and seen.creates == 2


@pytest.mark.parametrize("dialect", ["openai", "sglang"])
def test_provider_openai_sends_no_probe_at_all(configured: Configured, dialect: str) -> None:
    handle = configured(dialect=dialect)
    sora_nb.configure(provider="openai")
    seen = Seen(handle)
    job = sora_nb.submit("an owl on a fence post")
    assert job.result(timeout=60).is_file()
    assert seen.probes == [] and all("/videos" in path for path in seen.paths)
    assert job.backend == "127.0.0.1" and engines._engine is not None and not engines._engine.backend.detected
    assert "model" not in job.request  # the official behaviour: nothing added to the request


def test_the_local_preview_needs_no_probe(isolated_config: None, tmp_path: Path) -> None:
    backend = resolve_backend(Settings(cache_dir=tmp_path / "cache"))
    assert backend.local and backend.provider == "openai" and not backend.detected
    assert not (tmp_path / "cache" / STATE_FILE).exists()


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"backends": {"X": 1}}'])
def test_an_unreadable_state_file_is_ignored_and_rewritten(
    make_server: MakeServer, tmp_path: Path, content: str
) -> None:
    handle = make_server(dialect="omlx")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / STATE_FILE).write_text(content)
    backend = detect(handle, cache)
    assert backend.provider == "omlx"
    assert remembered(cache)[backend.identity]["provider"] == "omlx"


def test_a_remembered_profile_detection_cannot_give_is_ignored(make_server: MakeServer, tmp_path: Path) -> None:
    handle = make_server(dialect="sglang")
    cache = tmp_path / "cache"
    identity = detect(handle, cache).identity
    planted = {"provider": "azure", "models": ["x"], "saved_at": time.time()}  # a shared cache's
    (cache / STATE_FILE).write_text(json.dumps({"backends": {identity: planted}}))
    assert detect(handle, cache).provider == "sglang"


def test_a_stale_answer_is_asked_again(make_server: MakeServer, tmp_path: Path) -> None:
    handle = make_server(dialect="unsloth")
    cache = tmp_path / "cache"
    identity = detect(handle, cache).identity
    old = {"provider": "openai", "models": [], "saved_at": 1_000_000.0}  # a 1970 answer, far past MAX_AGE
    (cache / STATE_FILE).write_text(json.dumps({"backends": {identity: old}}))
    seen = Seen(handle)
    assert detect(handle, cache).provider == "unsloth" and seen.probes
    assert remembered(cache)[identity]["saved_at"] > 1_000_000.0 + MAX_AGE


def test_an_overloaded_answer_is_used_but_not_remembered(make_server: MakeServer, tmp_path: Path) -> None:
    handle = make_server(dialect="sglang", faults="5xx=1.0")  # every GET answers 5xx
    backend = detect(handle, tmp_path / "cache")
    assert backend.provider == "openai" and not backend.settled
    assert not (tmp_path / "cache" / STATE_FILE).exists()


def test_an_unreachable_server_is_not_remembered_and_asked_again(
    detecting: Configured, make_server: MakeServer, tmp_path: Path
) -> None:
    handle = detecting(dialect="vllm-omni")
    port = int(handle.url.rsplit(":", 1)[1])
    handle.stop()
    down = detect(handle, tmp_path / "cache")
    assert (down.provider, down.detected, down.settled) == ("openai", False, False)
    assert not (tmp_path / "cache" / STATE_FILE).exists()
    failed = sora_nb.submit("a lighthouse at dusk")
    with pytest.raises(errors.ConnectError):
        failed.result(timeout=60)
    again = make_server(dialect="vllm-omni", port=port)  # the engine is up now: the next job asks again
    sora_nb.configure(api_key=again.key)
    job = sora_nb.submit("a lighthouse at dusk")
    assert job.result(timeout=60).is_file() and job.backend.startswith("vLLM-Omni · ")


def test_localai_is_identified_and_its_models_read(make_server: MakeServer, tmp_path: Path) -> None:
    handle = make_server(dialect="localai", served_model="wan-2.1-t2v")
    seen = Seen(handle)
    backend = detect(handle, tmp_path / "cache")
    assert (backend.provider, backend.models) == ("localai", ("wan-2.1-t2v",))
    assert "/readyz" in seen.probes  # its model cards carry no owned_by: readiness tells


@pytest.mark.parametrize("mode", ["configured", "detected"])
@pytest.mark.parametrize("dialect", ASYNC_ENGINES)
def test_each_engine_gives_a_real_mp4(configured: Configured, dialect: str, mode: str) -> None:
    handle = configured(dialect=dialect)
    if mode == "detected":
        sora_nb.configure(provider=None)
    job = sora_nb.submit(f"a paper boat on a stream ({dialect}, {mode})")
    path = job.result(timeout=60)
    assert mp4_boxes(path.read_bytes())[:1] == ["ftyp"]
    assert job.backend == f"{TITLES[dialect]} · {handle.url.split('//')[1]}"
    assert job.request["model"] == DEFAULT_SERVED_MODEL  # no model was set: the served one is used


@pytest.mark.parametrize("mode", ["configured", "detected"])
def test_aquiles_gets_a_placeholder_bearer_when_no_key_is_set(configured: Configured, mode: str) -> None:
    configured(dialect="aquiles")
    sora_nb.configure(api_key=None, provider="aquiles" if mode == "configured" else None)
    assert sora_nb.submit(f"a tram in the rain ({mode})").result(timeout=60).is_file()


def test_placeholder_key_only_where_the_profile_has_one() -> None:
    assert PROVIDERS["aquiles"].auth_headers(None) == {"Authorization": "Bearer sora-nb"}
    assert PROVIDERS["aquiles"].auth_headers("k") == {"Authorization": "Bearer k"}
    assert PROVIDERS["openai"].auth_headers(None) == {} and PROVIDERS["sglang"].auth_headers("") == {}


@pytest.mark.parametrize("dialect", ["vllm-omni", "omlx"])
@pytest.mark.parametrize("mode", ["configured", "detected"])
def test_a_model_the_engine_does_not_serve_fails_before_the_create(
    configured: Configured, dialect: str, mode: str
) -> None:
    handle = configured(dialect=dialect)
    if mode == "detected":
        sora_nb.configure(provider=None)
    seen = Seen(handle)
    job = sora_nb.submit("a glacier calving", model="sora-2")
    with pytest.raises(errors.InvalidRequestError) as caught:
        job.result(timeout=60)
    assert DEFAULT_SERVED_MODEL in caught.value.message and "'sora-2'" in caught.value.message
    assert "Leave model out" in caught.value.message and caught.value.param == "model"
    assert seen.creates == 0 and len(handle.app.store.jobs()) == 0
    assert engines._engine is not None and engines._engine.client.requests["create"] == 0


def test_a_configured_model_is_checked_too(configured: Configured) -> None:
    configured(dialect="omlx")
    sora_nb.configure(model="sora-2-pro")
    with pytest.raises(errors.InvalidRequestError, match="sora-2-pro"):
        sora_nb.submit("a heron").result(timeout=60)


@pytest.mark.parametrize("dialect", ["aquiles", "unsloth"])
def test_a_lenient_engine_takes_any_model_name(detecting: Configured, dialect: str) -> None:
    detecting(dialect=dialect)
    job = sora_nb.submit("a fox in snow", model="wan2.2")
    assert job.result(timeout=60).is_file() and job.request["model"] == "wan2.2"


def test_an_engine_restarted_with_another_model_is_asked_again(detecting: Configured, make_server: MakeServer) -> None:
    first = detecting(dialect="vllm-omni", served_model="Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    assert sora_nb.submit("a windmill").result(timeout=60).is_file()  # remembers the served model
    port = int(first.url.rsplit(":", 1)[1])
    first.stop()
    again = make_server(dialect="vllm-omni", port=port, served_model="Wan-AI/Wan2.2-TI2V-5B-Diffusers")
    sora_nb.configure(api_key=again.key)
    job = sora_nb.submit("a windmill", model="Wan-AI/Wan2.2-TI2V-5B-Diffusers")
    assert job.result(timeout=60).is_file() and len(again.app.store.jobs()) == 1


def test_the_cli_says_which_engine_made_the_video(detecting: Configured, capsys: pytest.CaptureFixture[str]) -> None:
    handle = detecting(dialect="sglang")
    assert cli.main(["generate", "a snail on a leaf"]) == 0
    assert f"(made by SGLang · {handle.url.split('//')[1]})" in capsys.readouterr().err


def test_the_widget_chip_names_the_engine(detecting: Configured) -> None:
    handle = detecting(dialect="vllm-omni")
    widget = sora_nb.generate("a slow river delta")
    assert widget.job.result(timeout=60).is_file()
    assert widget.backend == f"vLLM-Omni · {handle.url.split('//')[1]}" and not widget.local
    assert widget.video_model == DEFAULT_SERVED_MODEL


@contextlib.contextmanager
def answering(body: bytes) -> Iterator[str]:
    """A bare HTTP server on loopback answering every GET with ``body`` (what the local server never sends)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_huge_or_endless_model_list_is_not_taken(tmp_path: Path) -> None:
    cards = [{"id": f"model-{i}", "owned_by": "sglang"} for i in range(5000)]
    with answering(json.dumps({"data": cards}).encode()) as url:
        backend = resolve_backend(Settings(base_url=url, cache_dir=tmp_path / "a"))
    assert backend.provider == "sglang" and len(backend.models) == 100  # the first hundred names
    padding = b" " * (2 << 20)  # 2 MiB: no model list is that big
    with answering(json.dumps({"data": cards[:1]}).encode() + padding) as url:
        backend = resolve_backend(Settings(base_url=url, cache_dir=tmp_path / "b"))
    assert backend.provider == "openai" and backend.models == ()


def test_a_video_made_before_is_not_refused_after_the_engine_changed_model(
    detecting: Configured, make_server: MakeServer, tmp_path: Path
) -> None:
    old_model, new_model = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    first = detecting(dialect="omlx", served_model=old_model)
    made = sora_nb.submit("a tide pool", model=old_model).result(timeout=60)
    port = int(first.url.rsplit(":", 1)[1])
    first.stop()
    again = make_server(dialect="omlx", port=port, served_model=new_model)
    (tmp_path / "cache" / STATE_FILE).unlink()  # a new session a day later: what it serves is asked again
    engines._engine = None
    job = sora_nb.submit("a tide pool", model=old_model)
    assert job.result(timeout=60) == made and job.cached  # re-running the cell costs nothing
    with pytest.raises(errors.InvalidRequestError, match=new_model):  # a fresh take needs a served model
        sora_nb.submit("a tide pool", model=old_model, new=True).result(timeout=60)
    assert len(again.app.store.jobs()) == 0
