"""The local Videos API assembled: the settings bound to an address, the store, the routes behind the gate,
the CDN origin on a second port, and the ASGI entry that sends each request to one or the other."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sora_nb.server.cdn import CdnOrigin
from sora_nb.server.config import ServerConfig, default_data_dir
from sora_nb.server.context import Context
from sora_nb.server.dialects import Dialect, get_dialect
from sora_nb.server.engines import Engine
from sora_nb.server.engines.synthetic import SyntheticEngine
from sora_nb.server.errors import exception_handlers
from sora_nb.server.faults import Faults
from sora_nb.server.middleware import Gate, tagged
from sora_nb.server.remote import FetchPolicy
from sora_nb.server.routes import characters, content, engines, files, info, videos
from sora_nb.server.routes.discovery import discovery_routes
from sora_nb.server.serving import AssetServer
from sora_nb.server.store import Store

if TYPE_CHECKING:
    from sora_nb.server.relay.service import Relay


class VideosServer:
    """The local Videos API (ASGI callable); a second port, if given, serves the signed-URL CDN origin.

    ``address`` is the IP the server listens on: beyond loopback, the key and remote inputs get safe defaults.
    """

    def __init__(self, config: ServerConfig, address: str = "127.0.0.1") -> None:
        config = config.bound(address)
        if not config.key:
            raise ValueError("the server key cannot be empty")
        if config.max_active < 1:
            raise ValueError("max_active must be at least 1")
        self.config = config
        self.key: str = config.key
        self.dialect: Dialect = get_dialect(config.dialect)
        self.faults = Faults.parse(config.faults)
        self.data_dir = Path(config.data_dir) if config.data_dir else default_data_dir()
        retention = self.faults.expire if self.faults.expire is not None else config.retention
        self.relay: Relay | None = None
        if config.engine == "relay":
            self.relay = _relay(config)
            self.data_dir = self.relay.data_dir
            self.engine: Engine = self.relay.engine
        elif config.engine == "synthetic":
            self.engine = SyntheticEngine(
                speed=config.speed, blocked_words=config.blocked_words, workers=config.render_workers
            )
        else:
            raise ValueError(f"unknown engine {config.engine!r}: choose synthetic or relay")
        self.store = Store(
            self.data_dir,
            self.engine,
            retention=retention,
            id_prefix=self.dialect.id_prefix,
            base64_ids=self.dialect.base64_ids,
            id_style=self.dialect.id_style,
        )
        self.assets = AssetServer(self.store, self.faults)
        self.bytes_sent: Counter[tuple[str, str]] = self.assets.bytes_sent  # body bytes sent per (video ID, variant)
        self.cdn = CdnOrigin(config, self.store, self.assets)
        self.context = Context(
            config=config,
            dialect=self.dialect,
            store=self.store,
            faults=self.faults,
            fetch_policy=FetchPolicy.of(bool(config.allow_remote_inputs), config.allow_private_inputs),
            assets=self.assets,
            cdn=self.cdn,
        )
        routes = self.relay.routes(self.dialect.prefix) if self.relay else self._routes()
        api = Starlette(routes=routes, exception_handlers=exception_handlers())
        api.state.context = self.context
        api.state.relay = self.relay
        api.state.detail_errors = self.dialect.errors == "detail"
        self.api: ASGIApp = (
            self.relay.gate(api) if self.relay else Gate(api, key=self.key, dialect=self.dialect, faults=self.faults)
        )

    @property
    def deletes(self) -> Counter[str]:
        """DELETE requests received per video ID."""
        return self.context.deletes

    @property
    def cdn_rejected_headers(self) -> list[str]:
        """The auth headers that reached the CDN origin (a client must strip them on the cross-origin hop)."""
        return self.cdn.rejected_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        send = tagged(send, preview=self.relay is None)
        server = scope.get("server")
        if self.cdn.port is not None and server and server[1] == self.cdn.port:
            await self.cdn.app(scope, receive, send)
            return
        await self.api(scope, receive, send)

    def close(self) -> None:
        """Stop renders (unfinished ones resume on the next start with the same data directory)."""
        self.store.close()
        if self.relay is not None:
            self.relay.close()
        else:
            self.engine.close()

    def _routes(self) -> list[Route]:
        """Every path of the API, in matching order (a literal path before the ``{video_id:path}`` that would
        swallow it)."""
        if self.dialect.engine:
            return self._engine_routes()
        p = self.dialect.prefix + "/videos"
        return [
            Route(p, videos.create, methods=["POST"]),
            Route(p, videos.list_videos, methods=["GET"]),
            Route(p + "/edits", videos.edit, methods=["POST"]),
            Route(p + "/extensions", videos.extend, methods=["POST"]),
            Route(p + "/characters", characters.create_character, methods=["POST"]),
            Route(p + "/characters/{character_id:path}", characters.get_character, methods=["GET"]),
            Route(p + "/{video_id:path}/content", content.content, methods=["GET", "HEAD"]),
            Route(p + "/{video_id:path}/remix", videos.remix, methods=["POST"]),
            Route(p + "/{video_id:path}", videos.retrieve, methods=["GET"]),
            Route(p + "/{video_id:path}", videos.delete, methods=["DELETE"]),
            Route(self.dialect.prefix + "/files", files.upload_file, methods=["POST"]),
            Route("/", info.info, methods=["GET"]),
        ]

    def _engine_routes(self) -> list[Route]:
        """The paths of a self-hosted engine dialect: its discovery endpoints, then its job API (on each of its
        prefixes), or LocalAI's synchronous create and result files."""
        d = self.dialect
        routes = [Route("/", info.info, methods=["GET"]), *discovery_routes(d.name)]
        if d.name == "localai":
            creates = ("/v1/videos", "/v1/videos/generations", "/videos")
            routes += [Route(p, engines.create_localai, methods=["POST"]) for p in creates]
            routes.append(Route("/generated-videos/{name}", engines.generated_video, methods=["GET", "HEAD"]))
            return routes
        for prefix in (d.prefix, *d.alias_prefixes):
            p = prefix + "/videos"
            if d.name == "vllm-omni":
                routes.append(Route(p + "/sync", engines.create_sync, methods=["POST"]))
            routes += [
                Route(p, engines.create, methods=["POST"]),
                Route(p, videos.list_videos, methods=["GET"]),
                Route(p + "/{video_id:path}/content", content.content, methods=["GET", "HEAD"]),
                Route(p + "/{video_id:path}", videos.retrieve, methods=["GET"]),
                Route(p + "/{video_id:path}", videos.delete, methods=["DELETE"]),
            ]
        return routes


def _relay(config: ServerConfig) -> Relay:
    """The class relay of ``config`` (loaded only for ``engine="relay"``), in its data directory."""
    from sora_nb.server.relay.service import Relay
    from sora_nb.server.relay.users import default_relay_dir

    if config.relay is None:
        raise ValueError("the relay engine needs an upstream: sora-nb serve --engine relay --upstream URL")
    if config.dialect != "openai":
        raise ValueError("the relay speaks the official dialect to students; leave --dialect out")
    return Relay(config.relay, Path(config.data_dir) if config.data_dir else default_relay_dir())
