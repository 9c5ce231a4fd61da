"""The relay assembled for the local server: its ledger, prices, engine, routes, and the gate that knows users.

:class:`Relay` is what :class:`sora_nb.server.app.VideosServer` builds for ``engine="relay"``: the store gets
the relay's engine, the API gets the relay's routes, and :class:`UserGate` (each student's token) takes the
place of the one-key gate.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sora_nb.client import AsyncVideosClient
from sora_nb.providers import get_provider
from sora_nb.server.errors import ApiError
from sora_nb.server.relay.engine import RelayEngine
from sora_nb.server.relay.pricing import load_prices
from sora_nb.server.relay.settings import UPSTREAM_KEY_ENV, RelayConfig
from sora_nb.server.relay.storage import SqliteStorage, User
from sora_nb.server.relay.users import hash_token

ADMIN_PAGE = "/admin"
"""The teacher's page: open to all (it holds no data; its script asks for an admin token)."""


class Relay:
    """A class relay in ``data_dir``: ``storage`` (the ledger), ``engine`` (upstream jobs), ``prices``."""

    def __init__(self, config: RelayConfig, data_dir: Path) -> None:
        if not config.upstream:
            raise ValueError("the relay needs --upstream URL: the Videos API it forwards to")
        if config.user_jobs < 1 or config.creates_per_minute < 1:
            raise ValueError("--user-jobs and --creates-per-minute must be at least 1")
        provider = get_provider(config.upstream_provider)  # ValueError naming the known profiles
        self.config, self.data_dir = config, data_dir
        self.prices = load_prices(config.prices)
        self.identity = f"relay-upstream:{provider.name}:{config.upstream.rstrip('/')}"
        """What the request fingerprints are salted with: the same request to another upstream is another job."""
        self.has_key = bool(os.environ.get(UPSTREAM_KEY_ENV))
        self.storage = SqliteStorage(data_dir)
        key = os.environ.get(UPSTREAM_KEY_ENV) or None  # read here and kept only by the upstream client

        def client() -> AsyncVideosClient:
            return AsyncVideosClient(config.upstream, key, provider=provider)

        self.engine = RelayEngine(self.storage, client, data_dir / "content", poll_interval=config.poll_interval)

    def routes(self, prefix: str) -> list[Route]:
        """The students' Videos API under ``prefix``, and the teacher's pages."""
        from sora_nb.server.relay import admin, routes  # they import this module for relay_of and user_of

        return [*routes.relay_routes(prefix), *admin.admin_routes()]

    def gate(self, app: ASGIApp) -> UserGate:
        """``app`` behind the users' tokens."""
        return UserGate(app, self)

    def close(self) -> None:
        """Stop following upstream jobs and close the ledger."""
        self.engine.close()
        self.storage.close()  # closing twice is harmless


def relay_of(request: Request) -> Relay:
    """The relay serving ``request``."""
    relay = request.app.state.relay
    assert isinstance(relay, Relay)
    return relay


def user_of(request: Request) -> User:
    """The user ``request`` was authenticated as (by :class:`UserGate`)."""
    user = request.scope["state"]["relay_user"]
    assert isinstance(user, User)
    return user


class UserGate:
    """ASGI middleware: a user's token as ``Authorization: Bearer <token>``, else 401; nothing of it goes on."""

    def __init__(self, app: ASGIApp, relay: Relay) -> None:
        self.app, self.relay = app, relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        if request.url.path == ADMIN_PAGE:  # the page holds no data; it asks for the token itself
            await self.app(scope, receive, send)
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = self.relay.storage.user_by_token(hash_token(token)) if scheme.lower() == "bearer" and token else None
        if user is None:
            error = ApiError(
                401,
                "Missing or unknown relay token. Send the token your teacher gave you as `Authorization: Bearer "
                "<token>` (in sora_nb: configure(base_url=RELAY_URL, api_key=TOKEN)).",
                code="invalid_api_key",
            )
            await error.response()(scope, receive, send)
            return
        scope.setdefault("state", {})["relay_user"] = user
        await self.app(scope, receive, send)
