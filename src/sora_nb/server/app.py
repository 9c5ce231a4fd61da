"""The local Videos API assembled: the settings bound to an address, the store, the routes behind the gate,
the CDN origin on a second port, and the ASGI entry that sends each request to one or the other."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

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
        self.engine: Engine = SyntheticEngine(
            speed=config.speed, blocked_words=config.blocked_words, workers=config.render_workers
        )
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
        api = Starlette(routes=self._routes(), exception_handlers=exception_handlers())
        api.state.context = self.context
        api.state.detail_errors = self.dialect.errors == "detail"
        self.api = Gate(api, key=self.key, dialect=self.dialect, faults=self.faults)

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
        send = tagged(send)
        server = scope.get("server")
        if self.cdn.port is not None and server and server[1] == self.cdn.port:
            await self.cdn.app(scope, receive, send)
            return
        await self.api(scope, receive, send)

    def close(self) -> None:
        """Stop renders (unfinished ones resume on the next start with the same data directory)."""
        self.store.close()
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
