"""What each self-hosted engine dialect serves besides its videos routes, so a client can tell them apart.

The research (``shared/research/selfhosted-video-servers.md``) lists the endpoints (SGLang: ``/health``,
``/models``, ``/v1/models``, ``/server_info``; LocalAI ``/readyz``) but not their bodies; the bodies below
are modelled on the engines' LLM servers (vLLM's and SGLang's model cards) and chosen where the research is
silent (Aquiles, Unsloth, oMLX). What tells each engine apart:

- SGLang: ``GET /server_info`` answers (``model_path``, ``pipeline``); ``owned_by: "sglang"``;
- vLLM-Omni: ``owned_by: "vllm"`` with ``root`` and ``max_model_len``; ``GET /version``;
- Aquiles-Image: ``owned_by: "aquiles-image"``; Unsloth: ``owned_by: "unsloth"``, ``GET /api/health``;
- LocalAI: ``GET /readyz`` answers, model entries carry no ``owned_by``;
- oMLX: ``owned_by: "omlx"`` and ``type: "video"`` on each model.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sora_nb.server.context import Context

_STARTED = int(time.time())
_OWNER = {"sglang": "sglang", "vllm-omni": "vllm", "aquiles": "aquiles-image", "unsloth": "unsloth", "omlx": "omlx"}


def _card(name: str, served: str) -> dict[str, Any]:
    card: dict[str, Any] = {"id": served, "object": "model"}
    if name == "localai":
        return card
    card.update(created=_STARTED, owned_by=_OWNER[name])
    if name == "vllm-omni":
        card.update(root=served, parent=None, max_model_len=None, permission=[])
    elif name == "sglang":
        card["root"] = served
    elif name == "omlx":
        card["type"] = "video"
    return card


async def models(request: Request) -> Response:
    """GET /v1/models: the served model, in the engine's model-card shape."""
    ctx = Context.of(request)
    return JSONResponse({"object": "list", "data": [_card(ctx.dialect.name, ctx.config.served_model)]})


async def ok(request: Request) -> Response:
    """A health or readiness probe: 200 with an empty body (vLLM, SGLang) or ``OK`` (LocalAI)."""
    return PlainTextResponse("OK" if Context.of(request).dialect.name == "localai" else "")


async def server_info(request: Request) -> Response:
    """SGLang's GET /server_info."""
    ctx = Context.of(request)
    served = ctx.config.served_model
    return JSONResponse({"model_path": served, "served_model_name": served, "pipeline": "diffusion", "num_gpus": 1})


def _json(body: dict[str, Any]) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        return JSONResponse(body)

    return answer


def discovery_routes(name: str) -> list[Route]:
    """The discovery endpoints of the engine dialect ``name``."""
    model_routes = [Route("/v1/models", models, methods=["GET"])]
    extra: dict[str, list[Route]] = {
        "sglang": [
            Route("/models", models, methods=["GET"]),
            Route("/health", ok, methods=["GET"]),
            Route("/server_info", server_info, methods=["GET"]),
        ],
        "vllm-omni": [
            Route("/health", ok, methods=["GET"]),
            Route("/ping", ok, methods=["GET"]),
            Route("/version", _json({"version": "0.11.0+omni"}), methods=["GET"]),
        ],
        "aquiles": [Route("/models", models, methods=["GET"])],
        "unsloth": [Route("/api/health", _json({"status": "healthy", "service": "Unsloth Studio"}), methods=["GET"])],
        "localai": [
            Route("/models", models, methods=["GET"]),
            Route("/readyz", ok, methods=["GET"]),
            Route("/healthz", ok, methods=["GET"]),
        ],
        "omlx": [Route("/health", _json({"status": "ok"}), methods=["GET"])],
    }
    return model_routes + extra[name]
