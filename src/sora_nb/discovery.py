"""Which engine serves a base URL, and which models it serves: asked once per URL, remembered in the cache.

With no ``provider`` configured, :func:`discover` identifies a self-hosted engine from what it serves (its model
cards' ``owned_by`` on ``GET /v1/models``, SGLang's ``/server_info``, Unsloth's ``/api/health``, LocalAI's
``/readyz``, vLLM's ``/version``), with short timeouts, before any create. Nothing recognisable (errors and 404s
included) means the official ``openai`` profile. The answer goes to ``<cache>/engines.json``, keyed by the
backend identity, for an hour (an engine may be restarted with another model); an answer that relied on a
timeout or an overloaded reply, or a server that did not answer at all, is used once and not remembered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from sora_nb.errors import InvalidRequestError
from sora_nb.providers import PROVIDERS, get_provider
from sora_nb.statefiles import UnreadableFile, read_object, report_once, write_json

if TYPE_CHECKING:
    from sora_nb.engine import Engine

log = logging.getLogger("sora_nb")
PROBE_TIMEOUT = 3.0  # seconds per probe: an engine's HTTP server answers these at once, even while it renders
MAX_AGE = 3600.0  # seconds a remembered answer is trusted
STATE_FILE = "engines.json"
MAX_PROBE_BODY = 1 << 20  # bytes of one probe's answer
MAX_MODELS = 100  # model names kept from one list (a hostile server may send thousands)
# What a person calls each engine (the widget chip, the CLI); a profile missing here is shown by its host alone.
TITLES = {
    "sglang": "SGLang",
    "vllm-omni": "vLLM-Omni",
    "vllm-omni-sync": "vLLM-Omni",
    "aquiles": "Aquiles-Image",
    "unsloth": "Unsloth Studio",
    "localai": "LocalAI",
    "omlx": "oMLX",
}
# A model card's owned_by -> the profile (vLLM's LLM server says "vllm" too; only its Omni build serves videos).
_OWNERS = {
    "sglang": "sglang",
    "vllm": "vllm-omni",
    "aquiles-image": "aquiles",
    "aquiles": "aquiles",
    "unsloth": "unsloth",
    "omlx": "omlx",
}


@dataclass(frozen=True)
class Served:
    """What a base URL serves: the profile that fits (``None``: not identified), its models, and whether the
    answer is ``settled`` (every probe answered plainly, so it may be remembered)."""

    provider: str | None
    models: tuple[str, ...] = ()
    settled: bool = True


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


class _Probe:
    """GETs to one server's root with the configured key (no key: a placeholder Bearer if one is refused)."""

    def __init__(self, root: str, key: str | None) -> None:
        self.root = root
        self.settled = True
        self.reached = False
        self._headers = PROVIDERS["openai"].auth_headers(key)  # every engine takes a Bearer
        # https: CA certificates (~100 ms to load) and a kept connection (a TLS handshake per probe costs more);
        # plain http (engines on this machine or network): a fresh connection per probe, since a kept one
        # waited ~40 ms per probe for a delayed ACK on loopback (11 ms instead of 256 ms for five probes)
        secure = root.startswith("https:")
        self._http = httpx.Client(
            timeout=PROBE_TIMEOUT,
            follow_redirects=False,
            headers={"User-Agent": "sora_nb"},
            verify=secure,
            limits=httpx.Limits(max_keepalive_connections=None if secure else 0),
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str) -> _Answer | None:
        """The answer (its body cut at MAX_PROBE_BODY), or None when there was none (a timeout, no connection)."""
        try:
            with self._http.stream("GET", self.root + path, headers=self._headers) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_PROBE_BODY:  # a model list is a few KiB; this is no answer to read
                        body = b""
                        break
        except httpx.HTTPError as exc:
            shown = httpx.URL(self.root + path).copy_with(username=None, password=None)  # no userinfo in logs
            log.info("sora_nb: no answer from %s (%s)", shown, type(exc).__name__)
            self.settled = False
            return None
        self.reached = True
        status = response.status_code
        if status == 429 or status >= 500:
            self.settled = False  # overloaded or broken for now: ask again next time
        if status in (401, 403) and not self._headers:
            # Aquiles-Image wants some Bearer and checks none; a server that checks keys refuses this one too
            self._headers = PROVIDERS["aquiles"].auth_headers(None)
            return self.get(path)
        return _Answer(status, body)

    def json(self, path: str) -> dict[str, Any] | None:
        """The JSON object a 2xx answer holds; None otherwise."""
        answer = self.get(path)
        if answer is None or not 200 <= answer.status < 300:
            return None
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            return None
        return body if isinstance(body, dict) else None


def _cards(probe: _Probe) -> list[dict[str, Any]] | None:
    """The model cards of ``/v1/models`` (or ``/models``); None when neither answers with a list of them."""
    for path in ("/v1/models", "/models"):
        body = probe.json(path)
        if body is not None and isinstance(body.get("data"), list):
            return [card for card in body["data"] if isinstance(card, dict) and isinstance(card.get("id"), str)]
        if not probe.reached:
            return None  # nothing answers at all: no second try
    return None


def _models(cards: list[dict[str, Any]]) -> tuple[str, ...]:
    """The served model names; where cards say their ``type`` (oMLX), the video models only."""
    typed = [card for card in cards if "type" in card]
    chosen = [card for card in typed if card.get("type") == "video"] if typed else cards
    return tuple(dict.fromkeys(str(card["id"])[:200] for card in chosen))[:MAX_MODELS]


def _identify(probe: _Probe) -> Served | None:
    """The engine behind ``probe``'s server from what it serves; None when nothing answered."""
    cards = _cards(probe)
    if not probe.reached:
        return None
    owners = {str(card.get("owned_by", "")).casefold() for card in cards or []}
    for owner, name in _OWNERS.items():
        if owner in owners:
            return Served(name, _models(cards or []), probe.settled)
    if cards and owners == {""}:  # LocalAI's model entries carry no owned_by, and it answers /readyz
        ready = probe.get("/readyz")
        if ready is not None and 200 <= ready.status < 300:
            return Served("localai", _models(cards), probe.settled)
    info = probe.json("/server_info")
    if info is not None and "model_path" in info:
        return Served("sglang", _models(cards or []), probe.settled)
    health = probe.json("/api/health")
    if health is not None and "unsloth" in str(health.get("service", "")).casefold():
        return Served("unsloth", _models(cards or []), probe.settled)
    if cards is None and (version := probe.json("/version")) is not None and set(version) == {"version"}:
        return Served("vllm-omni", (), probe.settled)  # its /v1/models wanted a key we do not have
    return Served("openai", (), probe.settled)


def root_of(base_url: str) -> str:
    """The server root under which ``/v1/models`` and the health routes live (``.../v1`` taken off)."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _remembered(path: Path, identity: str) -> Served | None:
    """A fresh, well-formed answer remembered for ``identity``; None otherwise (a bad file is said once)."""
    try:
        state = read_object(path)
    except UnreadableFile as exc:
        report_once(path, f"{exc}; the engines are asked again and the file is rewritten")
        return None
    entries = state.get("backends") if state else None
    entry = entries.get(identity) if isinstance(entries, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    provider, models, saved = entry.get("provider"), entry.get("models"), entry.get("saved_at")
    fresh = isinstance(saved, int | float) and 0 <= time.time() - saved <= MAX_AGE
    detectable = provider is None or provider == "openai" or (provider in PROVIDERS and PROVIDERS[provider].engine)
    if not fresh or not detectable:  # a shared cache may hold anything: only what detection itself can answer
        return None
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        return None
    return Served(provider, tuple(models)[:MAX_MODELS])


def _remember(path: Path, identity: str, served: Served) -> None:
    try:
        state = read_object(path) or {}
    except UnreadableFile:
        state = {}
    entries = state.get("backends")
    kept = dict(entries) if isinstance(entries, Mapping) else {}
    before = kept.get(identity)
    provider = served.provider
    if provider is None and isinstance(before, Mapping) and before.get("provider") in PROVIDERS:
        provider = before["provider"]  # only the models were asked for: the engine is still the one it was
    kept[identity] = {"provider": provider, "models": list(served.models), "saved_at": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"backends": kept})
    except OSError as exc:  # a read-only cache costs a few probes next time, nothing more
        log.info("sora_nb: could not remember what %s serves in %s (%s)", identity, path, exc)


def discover(
    identity: str, base_url: str, key: str | None, cache_dir: Path, *, identify_engine: bool, fresh: bool = False
) -> Served:
    """What ``base_url`` serves: remembered under ``identity`` in ``cache_dir``, else asked now (and remembered
    when the answer is settled). ``identify_engine`` False asks only for the models (the profile is configured);
    ``fresh`` ignores what is remembered. An unreachable server gives ``Served(None, settled=False)``."""
    path = cache_dir / STATE_FILE
    known = None if fresh else _remembered(path, identity)
    if known is not None and (known.provider is not None or not identify_engine):
        return known
    probe = _Probe(root_of(base_url), key)
    try:
        if identify_engine:
            served = _identify(probe)
        else:
            cards = _cards(probe)
            served = Served(None, _models(cards or []), probe.settled) if probe.reached else None
    finally:
        probe.close()
    if served is None:
        log.info("sora_nb: %s did not answer; what it serves is asked again on the next job", identity)
        return Served(None, settled=False)
    if served.settled:
        _remember(path, identity, served)
    log.info("sora_nb: %s serves %s (models: %s)", identity, served.provider or "-", ", ".join(served.models) or "-")
    return served


async def complete_request(engine: Engine, kind: str, request: dict[str, Any], *, new: bool) -> dict[str, Any]:
    """``request`` as it goes to ``engine``'s engine: with the served model when none is set; on an engine that
    serves only its loaded models (``strict_models``), InvalidRequestError before any create for another name,
    listing the served ones (asked again first: the engine may have been restarted with another model). A request
    made before (its job or video known to the cache) is never refused: re-running a cell costs nothing."""
    backend = engine.backend
    provider = get_provider(backend.provider)
    model = request.get("model")
    if kind != "generate" or not provider.engine or not backend.models:
        return request
    if model is None:
        return {**request, "model": backend.served_model}
    if not provider.strict_models or model in backend.models:
        return request
    if not new and engine.cache.lookup(engine.request_key(kind, request)) is not None:
        return request
    served = await asyncio.to_thread(
        discover,
        backend.identity,
        backend.base_url,
        backend.api_key,
        engine.settings.cache_dir,
        identify_engine=False,
        fresh=True,
    )
    if served.models:
        engine.backend = backend = dataclasses.replace(backend, models=served.models)
    if model in backend.models:
        return request
    names = ", ".join(repr(name) for name in backend.models)
    raise InvalidRequestError(
        f"{backend.engine or backend.provider} at {backend.label.rpartition(' · ')[2]} does not serve the model "
        f"{model!r}; it serves {names}. Leave model out to use {backend.models[0]!r} (or pass model="
        f"{backend.models[0]!r}); for another model, restart the engine with it ({provider.start}).",
        param="model",
        code="model_not_served",
    )
