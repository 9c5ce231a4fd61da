"""GET /: what this server is (a local preview, its dialect, where its API lives)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sora_nb.server.context import Context


async def info(request: Request) -> Response:
    """A small JSON description of the server, so a person (or a client's detection) knows what answered."""
    ctx = Context.of(request)
    return JSONResponse(
        {
            "object": "sora_nb.local_server",
            "preview": True,
            "note": "sora_nb local preview server: synthetic videos, not a real model.",
            "dialect": ctx.dialect.name,
            "api": ctx.origin(request) + ctx.dialect.prefix,
        }
    )
