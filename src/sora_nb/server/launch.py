"""Running the local server with uvicorn: in a background thread (:func:`start`) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sora_nb.server.addresses import authority, hostname, is_wildcard, reachable_host
from sora_nb.server.app import VideosServer
from sora_nb.server.config import DEFAULT_BLOCKED_WORDS, ServerConfig
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from sora_nb.server.relay.settings import RelayConfig


def _bind(host: str, port: int) -> socket.socket:
    """A bound socket (port 0 picks a free one); OSError says if the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without it a JSON answer's body waits for the ACK of its headers,
    # which the client delays by 40 ms (Nagle meets delayed ACK), so every status request took 44 ms
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)  # connections queue from now on, so the URL can be announced before serving starts
    sock.set_inheritable(True)
    return sock


def _origin(host: str, sock: socket.socket) -> str:
    """The URL this machine reaches ``sock`` at (over loopback when ``host`` is a wildcard address)."""
    return f"http://{authority(reachable_host(host), sock.getsockname()[1])}"


def _public_origin(config: ServerConfig, host: str, sock: socket.socket) -> str:
    """The URL other machines reach ``sock`` at: ``public_url``, else this machine's name for a wildcard bind."""
    if config.public_url:
        return config.public_url.rstrip("/")
    if is_wildcard(host):
        return f"http://{authority(hostname(), sock.getsockname()[1])}"
    return _origin(host, sock)


class ServerHandle:
    """A running local server: ``url``, ``base_url`` (what a client on this machine needs), ``public_base_url``
    (what other machines need), ``key``, ``stop()``.

    Use it as a context manager to stop the server on exit. The key is not part of the repr.
    """

    def __init__(
        self,
        app: VideosServer,
        server: uvicorn.Server,
        thread: threading.Thread | None,
        url: str,
        *,
        public_url: str | None = None,
        cdn_url: str | None = None,
    ) -> None:
        self.app = app
        self.url = url
        self.base_url = url + app.dialect.prefix
        self.public_base_url = (public_url or url) + app.dialect.prefix
        self.key = app.key
        self.dialect = app.dialect.name
        self.data_dir = app.data_dir
        self.cdn_url = cdn_url
        self._server = server
        self._thread = thread

    def __repr__(self) -> str:
        return f"ServerHandle(url={self.url!r}, dialect={self.dialect!r}, local preview)"

    @property
    def running(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving and cancel running renders (they resume on the next start with the same data dir)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.app.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _prepare(
    config: ServerConfig, host: str, port: int, log_level: str
) -> tuple[VideosServer, uvicorn.Server, list[socket.socket], dict[str, str]]:
    """The app, its uvicorn server, the bound sockets and the handle's URLs (``url``, ``public_url``, ``cdn_url``)."""
    main = _bind(host, port)
    sockets = [main]
    try:
        app = VideosServer(config, main.getsockname()[0])
    except ValueError:
        main.close()
        raise
    urls = {"url": _origin(host, main), "public_url": _public_origin(app.config, host, main)}
    if app.dialect.content_redirect:
        cdn = _bind(host, 0)
        sockets.append(cdn)
        app.cdn.port, urls["cdn_url"] = cdn.getsockname()[1], _origin(host, cdn)
    uv_config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=log_level in ("debug", "info", "trace"),
        lifespan="off",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )
    return app, uvicorn.Server(uv_config), sockets, urls


def start(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    dialect: str = "openai",
    speed: float = 1.0,
    data_dir: str | Path | None = None,
    key: str | None = None,
    faults: str | None = None,
    retention: float = 86400.0,
    max_active: int = 32,
    blocked_words: tuple[str, ...] = DEFAULT_BLOCKED_WORDS,
    render_workers: int = 2,
    poll_hint: bool = True,
    allow_remote_inputs: bool | None = None,
    allow_private_inputs: tuple[str, ...] = (),
    public_url: str | None = None,
    served_model: str = DEFAULT_SERVED_MODEL,
    engine: str = "synthetic",
    relay: RelayConfig | None = None,
    log_level: str = "warning",
) -> ServerHandle:
    """Start a local Videos API server in a background thread and return its handle once it listens.

    Beyond loopback (``host="0.0.0.0"``) ``key`` None means a random key (``handle.key``) and ``image_url``
    inputs are fetched only with ``allow_remote_inputs=True``; see :class:`ServerConfig`. ``engine="relay"``
    with ``relay=RelayConfig(upstream=URL)`` starts a class relay instead (the upstream key from the
    environment variable ``SORA_NB_UPSTREAM_KEY``; students' tokens from ``sora-nb users add``).
    """
    config = ServerConfig(
        dialect=dialect,
        speed=speed,
        data_dir=Path(data_dir) if data_dir else None,
        key=key,
        faults=faults,
        retention=retention,
        max_active=max_active,
        blocked_words=tuple(blocked_words),
        render_workers=render_workers,
        poll_hint=poll_hint,
        allow_remote_inputs=allow_remote_inputs,
        allow_private_inputs=tuple(allow_private_inputs),
        public_url=public_url,
        served_model=served_model,
        engine=engine,
        relay=relay,
    )
    app, server, sockets, urls = _prepare(config, host, port, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, name="sora-nb-local-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            app.close()
            raise RuntimeError(f"the local server did not start on {urls['url']}; see the log above")
        time.sleep(0.01)
    return ServerHandle(app, server, thread, **urls)


def serve(config: ServerConfig, *, host: str, port: int, log_level: str = "info", announce: Any = print) -> None:
    """Serve in the foreground until Ctrl+C, announcing the URL first."""
    app, server, sockets, urls = _prepare(replace(config), host, port, log_level)
    handle = ServerHandle(app, server, None, **urls)
    announce(handle)
    try:
        server.run(sockets=sockets)
    finally:
        app.close()
